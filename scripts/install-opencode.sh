#!/usr/bin/env bash
# Installs a pinned opencode release with npm into a git-ignored folder and prints the path of
# its platform binary on stdout (progress goes to stderr).
#
#   scripts/install-opencode.sh            # opencode-ai@1.18.33 into .cache/opencode/
#   scripts/install-opencode.sh 1.14.51    # another release into .cache/opencode-1.14.51/
#   scripts/install-opencode.sh --check    # only print the path; exit 1 if not installed
#
# Idempotent: when the binary is already there and `--version` prints the wanted version, it
# only prints the path.  The binary is run directly from the platform package
# (node_modules/opencode-linux-<arch>/bin/opencode), so it does not depend on opencode-ai's
# postinstall step; the "-baseline" build (no AVX2) is the fallback when the main one does not run.
set -euo pipefail

default_version=1.18.33
check_only=false
if [ "${1:-}" = "--check" ]; then
  check_only=true
  shift
fi
version=${1:-$default_version}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ "$version" = "$default_version" ]; then
  dir=$root/.cache/opencode
else
  dir=$root/.cache/opencode-$version
fi

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

runs() {  # runs BINARY: true when BINARY exists and reports the wanted version
  local bin=$1 out
  [ -x "$bin" ] || return 1
  out=$(HOME=$scratch XDG_CONFIG_HOME=$scratch/.config XDG_DATA_HOME=$scratch/.local/share \
        XDG_CACHE_HOME=$scratch/.cache XDG_STATE_HOME=$scratch/.local/state \
        OPENCODE_DISABLE_AUTOUPDATE=1 OPENCODE_DISABLE_MODELS_FETCH=1 \
        timeout 30 "$bin" --version 2>/dev/null) || return 1
  [ "$(printf '%s' "$out" | tr -d '[:space:]')" = "$version" ]
}

find_binary() {  # prints the first candidate binary that runs
  local pkg
  for pkg in "opencode-$os-$arch" "opencode-$os-$arch-baseline" \
             "opencode-$os-$arch-musl" "opencode-$os-$arch-baseline-musl"; do
    if runs "$dir/node_modules/$pkg/bin/opencode"; then
      printf '%s\n' "$dir/node_modules/$pkg/bin/opencode"
      return 0
    fi
  done
  return 1
}

if find_binary; then
  exit 0
fi
if $check_only; then
  echo "install-opencode: opencode $version is not installed in $dir; run $0${1:+ $1}" >&2
  exit 1
fi

echo "install-opencode: installing opencode-ai@$version into $dir ..." >&2
mkdir -p "$dir"
cd "$dir"
if [ ! -f package.json ]; then
  npm init -y >/dev/null
fi
npm install "opencode-ai@$version" --no-audit --no-fund >&2

if ! find_binary; then
  echo "install-opencode: no opencode-$os-$arch binary in $dir/node_modules reports version $version" >&2
  exit 1
fi
