"""Pieces every layer shares: the error hierarchy, located YAML, SMS length arithmetic.

Imports nothing of the project's own, so ``intents``, ``dialogs``, ``policy`` and ``bot`` can
all build on it without cycles.
"""
