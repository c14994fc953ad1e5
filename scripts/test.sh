#!/usr/bin/env bash
# Runs the test suite. Installs and starts what the tests need on a fresh Debian box.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v dot >/dev/null 2>&1 || need_apt+=(graphviz)  # flow diagrams (smsbot flows graph)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)  # tests/service/test_simulator_page.py
# The simulator page is Chinese first: without CJK fonts its screenshots show empty boxes.
[ -d /usr/share/fonts/opentype/noto ] && ls /usr/share/fonts/opentype/noto | grep -qi cjk \
    || need_apt+=(fonts-noto-cjk)
# The Redis store's contract tests; tests/service/conftest.py starts a private server itself.
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "installing: ${need_apt[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

exec .venv/bin/python -m pytest "$@"
