#!/usr/bin/env bash
# Creates .venv (once) and installs mmthreads with its pinned dependencies.
# Re-runs only when pyproject.toml or constraints.txt changed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.mmthreads-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing mmthreads and its pinned dependencies into .venv ..." >&2
  log=.venv/install.log
  if ! { true \
         && .venv/bin/python -m pip install --disable-pip-version-check -c constraints.txt -e ".[dev]"; } \
       >"$log" 2>&1; then
    cat "$log" >&2
    echo "installation failed (log: $log)" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi
