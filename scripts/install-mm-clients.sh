#!/usr/bin/env bash
# Installs the independent Mattermost clients the fidelity suite (tests/fidelity) runs against the
# emulator, into git-ignored folders:
#
#   .cache/mm-client/   npm: @mattermost/client (Client4 + WebSocketClient) and ws, exact versions
#   .venv-mm/           python3 venv: mattermostdriver and schemathesis, pinned by
#                       tests/fidelity/constraints-mm.txt
#
# Idempotent and quick when nothing changed: each half keeps a stamp of what it installed and is
# skipped while the stamp matches.  Progress goes to stderr.
#
#   scripts/install-mm-clients.sh            # install what is missing
#   scripts/install-mm-clients.sh --freeze   # rebuild .venv-mm from the top-level pins only and
#                                            # rewrite tests/fidelity/constraints-mm.txt from it
set -euo pipefail

mm_client_version=11.9.0
ws_version=8.23.0
mattermostdriver_version=7.3.2
schemathesis_version=4.32.5

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
python=${PYTHON:-python3}
constraints=tests/fidelity/constraints-mm.txt

freeze=no
if [ "${1:-}" = "--freeze" ]; then
  freeze=yes
fi

log() { echo "install-mm-clients: $*" >&2; }

# --- Node: @mattermost/client + ws ---------------------------------------------------------------
node_dir=.cache/mm-client
node_want="@mattermost/client@$mm_client_version ws@$ws_version"
node_stamp=$node_dir/.installed
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  log "node and npm are required (Node 20 or newer)"
  exit 1
fi
if [ -f "$node_stamp" ] && [ "$(cat "$node_stamp")" = "$node_want" ] \
   && [ -f "$node_dir/node_modules/@mattermost/client/package.json" ] \
   && [ -f "$node_dir/node_modules/ws/package.json" ]; then
  :
else
  log "installing $node_want into $node_dir ..."
  mkdir -p "$node_dir"
  (
    cd "$node_dir"
    if [ ! -f package.json ]; then
      npm init -y >/dev/null
    fi
    # shellcheck disable=SC2086  # two package specs, split on purpose
    npm install --no-audit --no-fund --save-exact $node_want >&2
  )
  for pkg in "@mattermost/client:$mm_client_version" "ws:$ws_version"; do
    name=${pkg%:*}
    want=${pkg##*:}
    got=$(node -p "require('./$node_dir/node_modules/$name/package.json').version")
    if [ "$got" != "$want" ]; then
      log "$name is $got in $node_dir, expected $want"
      exit 1
    fi
  done
  echo "$node_want" > "$node_stamp"
fi

# --- Python: mattermostdriver + schemathesis -----------------------------------------------------
venv=.venv-mm
top_level="mattermostdriver==$mattermostdriver_version schemathesis==$schemathesis_version"
if [ "$freeze" = yes ]; then
  rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv with $python ..."
  "$python" -m venv "$venv"
fi
py_stamp=$venv/.installed
py_want=$( { echo "$top_level"; cat "$constraints" 2>/dev/null || true; } | sha256sum | cut -d' ' -f1)
if [ "$freeze" = no ] && [ -f "$py_stamp" ] && [ "$(cat "$py_stamp")" = "$py_want" ]; then
  exit 0
fi
pip=("$venv/bin/python" -m pip install --disable-pip-version-check)
# shellcheck disable=SC2086
if [ "$freeze" = yes ] || [ ! -f "$constraints" ]; then
  log "installing $top_level into $venv (unconstrained) ..."
  "${pip[@]}" $top_level >&2
  mkdir -p "$(dirname "$constraints")"
  {
    echo "# Exact versions of everything in .venv-mm (see scripts/install-mm-clients.sh --freeze)."
    "$venv/bin/python" -m pip freeze --disable-pip-version-check --all \
      | grep -v -E '^(pip|setuptools|wheel)==' | LC_ALL=C sort -f
  } > "$constraints"
  log "wrote $constraints"
  py_want=$( { echo "$top_level"; cat "$constraints"; } | sha256sum | cut -d' ' -f1)
else
  log "installing $top_level into $venv with $constraints ..."
  "${pip[@]}" -c "$constraints" $top_level >&2
fi
"$venv/bin/python" -c "import mattermostdriver, schemathesis" \
  || { log "$venv cannot import mattermostdriver and schemathesis"; exit 1; }
echo "$py_want" > "$py_stamp"
