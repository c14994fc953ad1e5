"""Retention of personal data: the policy (``config/retention.yaml``), the sweep and its CLI."""
