"""Re-export of :mod:`common.yamlio` (YAML with line numbers), where the rule packs read it too."""

from common.yamlio import Located, YamlPath, load_yaml, load_yaml_text, validation_problems

__all__ = ["Located", "YamlPath", "load_yaml", "load_yaml_text", "validation_problems"]
