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
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip >&2
"$venv/bin/pip" install -q torch==2.13.0 >&2
"$venv/bin/pip" install -q transformers==4.57.3 accelerate==1.12.0 librosa soundfile einops onnxruntime sox >&2
"$venv/bin/pip" install -q --no-deps qwen-tts==0.1.1 >&2
# qwen_tts imports torchaudio through its 25 Hz tokenizer; the 12 Hz models never use it
# and there is no CPU wheel of torchaudio here, so an empty stand-in package is enough.
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$site/torchaudio/compliance"
: > "$site/torchaudio/__init__.py"
: > "$site/torchaudio/compliance/__init__.py"
: > "$site/torchaudio/compliance/kaldi.py"
"$venv/bin/python" -c 'from qwen_tts import Qwen3TTSModel' >&2
touch "$stamp"
echo "$venv"
