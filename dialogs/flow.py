"""Reading a flow file and its templates into a :class:`Flow`: shape-checked, not yet validated."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from common.errors import ConfigError, Problem
from common.yamlio import Located, YamlPath, load_yaml, validation_problems
from dialogs.schema import FlowSpec, TemplateFile, TemplateSpec


@dataclass(frozen=True)
class TemplateSource:
    """Where a template was written, so problems can point at it."""

    doc: Located
    path: YamlPath

    def problem(self, field: str | None, message: str, hint: str | None = None) -> Problem:
        return self.doc.problem((*self.path, field) if field else self.path, message, hint)


@dataclass(frozen=True)
class Flow:
    name: str
    version: str  # content hash of the flow file and its template files
    path: Path
    spec: FlowSpec
    doc: Located
    templates: dict[str, TemplateSpec]
    template_sources: dict[str, TemplateSource] = field(default_factory=dict)

    def problem(self, path: YamlPath, message: str, hint: str | None = None) -> Problem:
        return self.doc.problem(path, message, hint)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load_flow(path: Path) -> Flow:
    """Load a flow and the template files it names. Shape errors raise :class:`ConfigError`."""
    doc = load_yaml(path, _display(path))
    if not isinstance(doc.data, dict):
        raise ConfigError([doc.problem((), "a flow file is a mapping with `flow:`, `states:` …")])
    try:
        spec = FlowSpec.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, doc)) from exc

    digest = hashlib.sha256(path.read_bytes())
    templates: dict[str, TemplateSpec] = {}
    sources: dict[str, TemplateSource] = {}
    problems: list[Problem] = []

    def add(name: str, spec_: TemplateSpec, source: TemplateSource) -> None:
        if name in templates:
            first = sources[name]
            problems.append(
                source.problem(
                    None,
                    f"template {name!r} is defined twice",
                    f"first in {first.doc.file}:{first.doc.line(first.path)}; rename one",
                )
            )
            return
        templates[name] = spec_
        sources[name] = source

    for name, tspec in spec.templates.items():
        add(name, tspec, TemplateSource(doc, ("templates", name)))
    for i, rel in enumerate(spec.template_files):
        tpath = (path.parent / rel).resolve()
        if not tpath.is_file():
            problems.append(
                doc.problem(
                    ("template_files", i),
                    f"template file {rel!r} not found",
                    f"paths are relative to {path.parent}",
                )
            )
            continue
        digest.update(b"\0" + tpath.read_bytes())
        try:
            tdoc = load_yaml(tpath, _display(tpath))
            tfile = TemplateFile.model_validate(tdoc.data)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        except ValidationError as exc:
            problems.extend(validation_problems(exc, tdoc))
            continue
        for name, tspec in tfile.templates.items():
            add(name, tspec, TemplateSource(tdoc, ("templates", name)))
    if problems:
        raise ConfigError(problems)
    return Flow(
        name=spec.flow,
        version=digest.hexdigest()[:12],
        path=path,
        spec=spec,
        doc=doc,
        templates=templates,
        template_sources=sources,
    )
