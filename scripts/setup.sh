#!/usr/bin/env bash
# Set up kchip on a fresh Debian 12 machine (Python 3.11, root): ngspice, chromium, .venv, torch (CPU), the package.
set -euo pipefail
cd "$(dirname "$0")/.."
# ngspice (the simulator); chromium (headless, for the report.html test: tests/test_report.py)
need=()
command -v ngspice >/dev/null 2>&1 || need+=(ngspice)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e '.[test]'
echo "kchip set up: $(.venv/bin/python -c 'import kchip, torch; print("kchip", kchip.__version__, "torch", torch.__version__)')"
