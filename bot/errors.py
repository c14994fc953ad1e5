"""Re-export of :mod:`common.errors`, the project's one error hierarchy (kept for code written
against ``bot.errors``; the libraries import ``common.errors`` so they need nothing of ``bot``)."""

from common.errors import ConfigError, Problem, SmsbotError, UsageError

__all__ = ["ConfigError", "Problem", "SmsbotError", "UsageError"]
