#!/usr/bin/env bash
# Builds (once) a virtual environment for the compatibility runs and prints its path.
#   build_env.sh NAME [name==version ...]
# It holds pyproject's dependencies and test extra, torch and transformers pinned to the
# lower bounds pyproject states unless overridden (tests/compat/requirements.py); Sisyphus
# itself is not installed (the tests run it from the checkout through PYTHONPATH).
# Cached under $SISYPHUS_COMPAT_ENVS (default ~/.cache/sisyphus/compat), one folder per
# requirement set: a changed bound builds a new one. It is built in a private folder and
# renamed into place when complete, so two runs never share or destroy a half-built copy;
# the loser of a race drops its own copy and uses the winner's.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
name="$1"; shift
python="${PYTHON:-python3}"
reqs="$("$python" "$here/requirements.py" "$@")"
key="$(printf '%s\n%s\n' "$("$python" -c 'import sys; print(sys.version_info[:2])')" "$reqs" | sha256sum | cut -c1-12)"
root="${SISYPHUS_COMPAT_ENVS:-$HOME/.cache/sisyphus/compat}"
venv="$root/$name-$key"
if [ -f "$venv/.sisyphus-ready" ]; then echo "$venv"; exit 0; fi
mkdir -p "$root"
tmp="$(mktemp -d "$root/.building-$name-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
started=$SECONDS
"$python" -m venv "$tmp/venv"
printf '%s\n' "$reqs" > "$tmp/venv/requirements.txt"
# Only `python -m pip` and `python -m pytest` are used: a venv's own scripts name its
# building path in their first line, which the rename below leaves behind.
"$tmp/venv/bin/python" -m pip install -q --no-cache-dir -r "$tmp/venv/requirements.txt" >&2
"$tmp/venv/bin/python" -c 'import torch, transformers; print("built", torch.__version__, transformers.__version__)' >&2
echo "built in $((SECONDS - started)) s" >&2
touch "$tmp/venv/.sisyphus-ready"
if ! mv -T "$tmp/venv" "$venv" 2>/dev/null; then
  [ -f "$venv/.sisyphus-ready" ] || { rm -rf "$venv"; mv -T "$tmp/venv" "$venv"; }  # a dead half copy
fi
echo "$venv"
