#!/usr/bin/env bash
# Runs the test suite. Installs and starts what the tests need on a fresh Debian box.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest "$@"
