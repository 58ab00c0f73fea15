#!/usr/bin/env bash
# Builds (once) the virtual environment of the official qwen-tts package, used only as a
# test oracle: the parity tests run it in a subprocess on the same random weights as
# Sisyphus's own runtime. It needs transformers 4.57.3, so it cannot share our env.
# Usage: build_reference_env.sh [VENV_DIR]   (default: $SISYPHUS_REF_VENV or ~/.cache/sisyphus/qwen-tts-ref)
set -euo pipefail
venv="${1:-${SISYPHUS_REF_VENV:-$HOME/.cache/sisyphus/qwen-tts-ref}}"
stamp="$venv/.sisyphus-ready-v1"
if [ -f "$stamp" ]; then echo "$venv"; exit 0; fi
python="${PYTHON:-python3}"
# Built aside under a name of its own, then renamed into place: two runs at once each build
# their own copy and neither deletes the other's (the first rename wins; the loser's copy
# is removed). A half-built copy from a killed run is never where the stamp is looked for.
mkdir -p "$(dirname "$venv")"
work="$(mktemp -d "$venv.building.XXXXXX")"
trap 'rm -rf "$work"' EXIT
"$python" -m venv "$work"
"$work/bin/pip" install -q --upgrade pip >&2
"$work/bin/pip" install -q torch==2.13.0 >&2
"$work/bin/pip" install -q transformers==4.57.3 accelerate==1.12.0 librosa soundfile einops onnxruntime sox >&2
"$work/bin/pip" install -q --no-deps qwen-tts==0.1.1 >&2
# qwen_tts imports torchaudio through its 25 Hz tokenizer; the 12 Hz models never use it
# and there is no CPU wheel of torchaudio here, so an empty stand-in package is enough.
site=$("$work/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$site/torchaudio/compliance"
: > "$site/torchaudio/__init__.py"
: > "$site/torchaudio/compliance/__init__.py"
: > "$site/torchaudio/compliance/kaldi.py"
"$work/bin/python" -c 'from qwen_tts import Qwen3TTSModel' >&2
touch "$work/.sisyphus-ready-v1"
# A venv's scripts name its folder in their first line: make them name the final place.
{ grep -rlIs --null "$work" "$work/bin" "$work/pyvenv.cfg" || true; } | xargs -0 -r sed -i "s|$work|$venv|g"
if [ -f "$stamp" ]; then :  # another run finished first: keep its copy, drop ours
elif [ -e "$venv" ]; then  # a leftover without a stamp (an older script's killed run)
  stale="$(mktemp -d "$venv.stale.XXXXXX")"
  [ -f "$stamp" ] || mv -T "$venv" "$stale/old" 2>/dev/null || true
  mv -T "$work" "$venv" 2>/dev/null || true
  rm -rf "$stale"
else
  mv -T "$work" "$venv" 2>/dev/null || true  # fails harmlessly if another run got there first
fi
[ -f "$stamp" ] || { echo "reference environment $venv was not built" >&2; exit 1; }
echo "$venv"
