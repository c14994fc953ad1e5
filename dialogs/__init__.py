"""Dialog flows operators edit in YAML: schema, validator, engine, tests, tools (see README.md)."""
