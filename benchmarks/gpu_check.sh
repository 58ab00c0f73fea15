#!/usr/bin/env bash
# The GPU check: every CUDA path of Sisyphus run once, its figures in one table.
#
#   bash benchmarks/gpu_check.sh OUTDIR            # on a machine with an NVIDIA GPU (about 6-8 minutes)
#   bash benchmarks/gpu_check.sh OUTDIR --cpu      # the same steps scaled down, on the CPU
#
# Steps, each under its own timeout and all under one budget (SISYPHUS_CHECK_BUDGET_S,
# default 470 s, 1800 s with --cpu, whose caps are 4 times longer; a step that would
# start too late is skipped and says so):
#   env.log        the card, driver, torch / transformers / CUDA versions, Sisyphus's CUDA line
#   (background)   random checkpoints in the official layouts (full size; tiny with --cpu)
#   tests.log      the CUDA-only tests (skipped on the CPU), and the swap / NaN / seed ones
#   tts_stream.*   Sisyphus's streaming TTS alone: warm-up, first audio, total
#   asr_generate.* the compiled static-cache ASR decode against transformers' generate
#   bench.log/json `sisyphus bench --random-weights` (vad asr tts pipeline, memory; the longest)
#   asr_breakdown.* where one ASR call's time goes (asr_generate.py --breakdown), if time is left
#   summary.md     the table printed last: fast paths, ASR 5 s, TTS audible first audio and
#                  RTF, own share of voice to voice, peak GPU memory of the process
#
# Where the project's dependencies do not import (the offline GPU machine), a `.whl`
# folder beside the repository's root with the missing wheels is installed into
# /tmp/sisyphus-site first (see ../shared/gpu/README.md in the team's kit, and
# benchmarks/README.md). PYTHON picks the interpreter (default python3).
set -uo pipefail

out=${1:?usage: gpu_check.sh OUTDIR [--cpu]}
mode=${2:-gpu}
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out" && out=$(cd "$out" && pwd)
cd "$repo"
py=${PYTHON:-python3}
if [ "$mode" = "--cpu" ]; then scale=4 budget=${SISYPHUS_CHECK_BUDGET_S:-1800}; else scale=1 budget=${SISYPHUS_CHECK_BUDGET_S:-470}; fi
end=$((SECONDS + budget))
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1

if ! "$py" -c "import soundfile, librosa, silero_vad, openai, sounddevice" >/dev/null 2>&1 \
   && ls "$repo"/.whl/*.whl >/dev/null 2>&1; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/sisyphus-site "$repo"/.whl/*.whl >"$out/install.log" 2>&1 \
    || { echo "installing .whl failed:"; cat "$out/install.log"; exit 1; }
  export PYTHONPATH=/tmp/sisyphus-site:$repo${PYTHONPATH:+:$PYTHONPATH}
  export PATH=$repo/.whl:$PATH  # the espeak-ng stand-in, where the kit brings one
else
  export PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH}
fi

if [ "$mode" = "--cpu" ]; then
  size=tiny device=cpu dtype=fp32 repeats=1 frames=12 durations=2,5
else
  size=full device=cuda dtype=bf16 repeats=3 frames=63 durations=2,5,10
fi
cache=${SISYPHUS_CHECK_CACHE:-/tmp/sisyphus-check}

# step NAME CAP_S CMD...: run CMD under `timeout`, capped by what is left of the budget.
step() {
  local name=$1 cap=$(($2 * scale)) left=$((end - SECONDS)); shift 2
  if ((left < 10)); then echo "skipped: out of time" >"$out/$name.log"; echo "· $name: skipped (out of time)"; return 124; fi
  ((cap < left)) || cap=$left
  local started=$SECONDS
  timeout -k 5 "$cap" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  echo "· $name: rc $rc in $((SECONDS - started)) s (cap $cap s)"
  return $rc
}

{
  command -v nvidia-smi >/dev/null && nvidia-smi || echo "nvidia-smi: not found"
  "$py" - <<'EOF'
import platform, torch, transformers
from sisyphus.runtime.device import cuda_status
print("python", platform.python_version(), "| torch", torch.__version__, "| transformers", transformers.__version__,
      "| CUDA", torch.version.cuda)
print(cuda_status().describe())
EOF
} >"$out/env.log" 2>&1
echo "· env: $(tail -n 2 "$out/env.log" | tr '\n' ' ')"

# Checkpoints in the background while the tests run (they write tiny models of their own).
step checkpoints 300 "$py" -c "
import sys, time
from pathlib import Path
from sisyphus.bench.models import prepare_random_models
started = time.time()
prepare_random_models(Path(sys.argv[1]), sys.argv[2], print)
print('checkpoints written in %.0f s' % (time.time() - started))" "$cache" "$size" &
writer=$!

# The test files with CUDA-only tests (marked `cuda`; CI skips them), by name: collecting
# the whole suite would import audio packages the GPU machine may lack.
mapfile -t tests < <(cd "$repo" && grep -rl --include='*.py' '@pytest.mark.cuda' tests | sort)
step tests 170 "$py" -m pytest -q -p no:cacheprovider -rfEs -m cuda "${tests[@]}"
wait $writer

step tts_stream 80 "$py" "$repo/benchmarks/tts_stream.py" --ours-only --folder "$cache/$size/tts_custom" \
  --device "$device" --dtype "$dtype" --frames "$frames" --repeats "$repeats" --json "$out/tts_stream.json"

ln -sfn "$cache/$size/asr" "$cache/asr-$size"  # asr_generate.py reads <cache>/asr-<size>
step asr_generate 100 "$py" "$repo/benchmarks/asr_generate.py" --size "$size" --cache "$cache" --device "$device" \
  --dtype "$dtype" --decode compiled --durations "$durations" --repeats "$repeats" --json "$out/asr_generate.json"

# The turn-taking comparison (two more conversations) is left out to keep within the budget.
step bench 240 "$py" -m sisyphus.cli bench vad asr tts pipeline --no-turn-taking --random-weights --size "$size" \
  --device "$device" --dtype "$dtype" --repeats "$repeats" --cache "$cache" --json "$out/bench.json"

# Where one ASR call's time goes (features, encoder, prefill, decode), while budget is left.
step asr_breakdown 60 "$py" "$repo/benchmarks/asr_generate.py" --size "$size" --cache "$cache" --device "$device" \
  --dtype "$dtype" --durations "$durations" --repeats "$repeats" --breakdown --json "$out/asr_breakdown.json"

"$py" "$repo/benchmarks/gpu_summary.py" "$out" --bundle "$out/gpu_check.json" | tee "$out/summary.md"
echo "used $SECONDS s of $budget"
