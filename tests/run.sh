#!/usr/bin/env bash
# Sets up a fresh Linux machine for the test suite and runs it:
#   system audio/speech packages (PortAudio, PulseAudio, espeak-ng, sox, libsndfile),
#   a virtual environment .venv with the CPU build of torch and Sisyphus (editable),
#   then pytest: two workers (pytest-xdist), then the real-time device and terminal tests
#   (marked `serial`) alone. Extra arguments go to one plain pytest run (e.g. `-m parity`).
#   A full run (no arguments) then runs the ASR and TTS engine tests again under the oldest
#   torch and transformers pyproject.toml admits (tests/compat/run.sh; SISYPHUS_COMPAT=0 skips).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages="libportaudio2 libsndfile1 pulseaudio pulseaudio-utils libasound2-plugins espeak-ng sox ffmpeg tmux"
missing=""
for pkg in $apt_packages; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q $missing
fi

python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The CPU build of torch first: a bare `torch` requirement would pull the CUDA build.
python -c 'import torch' 2>/dev/null || python -m pip install -q "torch==2.13.0" \
  || python -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
python -m pip install -q -e '.[test]'

export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
status=0
python -c 'import xdist, pytest_rerunfailures' 2>/dev/null || python -m pip install -q "pytest-xdist>=3.5" "pytest-rerunfailures>=14"
if [ $# -eq 0 ]; then
  # Two workers for everything but the real-time device and terminal tests, which then run
  # alone (on a loaded CPU their timing is not what they test).
  python -m pytest -q -p no:cacheprovider -n 2 -m "not serial" --durations=25 || status=$?
  # Real time on a shared 2-core VM: each may run twice more before it counts as failed.
  python -m pytest -q -p no:cacheprovider -m serial --reruns 2 --durations=10 || status=$?
else
  python -m pytest -q -p no:cacheprovider --durations=25 "$@" || status=$?
fi
if [ $# -eq 0 ] && [ "${SISYPHUS_COMPAT:-1}" != 0 ]; then
  PYTHON="$python" bash tests/compat/run.sh || status=1
fi
exit $status
