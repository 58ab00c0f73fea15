#!/usr/bin/env bash
# The engine tests again under other versions than the project venv's newest ones:
#   oldest:     torch and transformers at the lower bounds pyproject.toml admits;
#               tests/asr and tests/tts (less the parity tests, which need the reference env);
#   transformers-5.17: the GPU machine's transformers 5.17 (the last API before `cache=`): the ASR
#               fast-path tests (the ones that depend on the cache API).
# tests/run.sh calls it after the main suite; PYTEST_ARGS adds pytest arguments to both runs.
# torch has no CPU-only build on PyPI for Linux x86-64: the oldest torch comes as the CUDA
# build with its nvidia-* libraries (about 3 GB, once; it runs on the CPU).
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD" OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
status=0
run() {  # run NAME "TEST PATHS" [name==version ...]
  local name="$1" paths="$2" venv started; shift 2
  started=$SECONDS
  venv="$(bash tests/compat/build_env.sh "$name" "$@")" || { echo "compat $name: building its env failed"; status=1; return; }
  echo "compat $name: env ready in $((SECONDS - started)) s ($(basename "$venv"))"
  # Two workers, as the main run: pytest-xdist joins the cached env (it is no requirement,
  # so the env's key, and the cache, stay the same).
  "$venv/bin/python" -c 'import xdist' 2>/dev/null || "$venv/bin/python" -m pip install -q "pytest-xdist>=3.5" >&2
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pytest -q -p no:cacheprovider -n 2 -m "not parity" $paths ${PYTEST_ARGS:-} || status=1
}
run oldest "tests/asr tests/tts"
run transformers-5.17 "tests/asr/test_fast.py tests/asr/test_selfcheck.py tests/asr/test_encoder.py" transformers==5.17.0 torch==2.13.0
exit $status
