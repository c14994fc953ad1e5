"""A rule-pack file with the content checker of each of its packs: what the gate enforces on a
text, loaded once and shared by the gate (``bot.compliance.gate``) and the flow validator
(``dialogs.validate``), so both judge a template by the same rules and rule ids."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from common.errors import ConfigError, Problem
from policy.content import ContentChecker
from policy.pack import CONFIG_DIR, DEFAULT_FILE, Pack, PackFile, load_packs


@dataclass(frozen=True)
class ContentPolicy:
    packs: PackFile
    checkers: dict[str, ContentChecker]

    @classmethod
    def load(cls, path: Path = DEFAULT_FILE) -> ContentPolicy:
        """The packs of ``path`` and their lexicon and meaning files (relative to its folder)."""
        packs = load_packs(path)
        config_dir = path.parent if path != DEFAULT_FILE else CONFIG_DIR
        return cls(packs, {n: ContentChecker.load(p, config_dir) for n, p in packs.packs.items()})

    def pack(self, name: str | None) -> Pack:
        """The named pack (the file's default for None); ``ConfigError`` for an unknown one."""
        key = name or self.packs.default_pack
        if key not in self.packs.packs:
            known = ", ".join(sorted(self.packs.packs))
            raise ConfigError([Problem("compliance", None, f"no rule pack {key!r} ({known})")])
        return self.packs.packs[key]

    def checker(self, name: str | None) -> ContentChecker:
        return self.checkers[self.pack(name).name]


@functools.cache
def default_policy() -> ContentPolicy:
    """The shipped ``config/compliance.yaml``, loaded on first use."""
    return ContentPolicy.load()
