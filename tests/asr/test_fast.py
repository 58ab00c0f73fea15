"""The static-cache ASR decoder against transformers' generate, on the tiny random checkpoint.

On CPU the compiled CUDA-graph step cannot run, but the same static-cache loop runs eagerly
(decode="static"), so its ids are checked token for token against `generate` here; the
compiled version is checked on CUDA only (and by the engine's own warm-up self-check).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sisyphus.asr.fast import StaticDecoder, compile_blocker, unsupported_settings
from sisyphus.asr.glm import FAST_NAME, MAX_NEW_TOKENS, GlmAsrEngine, new_token_budget
from sisyphus.errors import ConfigError
from sisyphus.frames import MIC_RATE_HZ
from sisyphus.runtime import fastpath
from tests.support.speech import espeak, silence


@pytest.fixture(scope="module")
def plain(tiny_glmasr_folder) -> GlmAsrEngine:
    return GlmAsrEngine.load(str(tiny_glmasr_folder), decode="plain")


@pytest.fixture(scope="module")
def static(tiny_glmasr_folder) -> GlmAsrEngine:
    return GlmAsrEngine.load(str(tiny_glmasr_folder), decode="static")


@pytest.fixture(scope="module")
def audios() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    lights = espeak("Turn on the lights in the kitchen, please.")
    return {
        "lights": lights,
        "tokyo": espeak("What time is it in Tokyo?"),
        "lights padded to 8 s": np.concatenate([silence(1.0), lights, silence(8.0 - 1.0 - len(lights) / MIC_RATE_HZ)]),
        "noise 0.5 s": rng.normal(0.0, 0.05, MIC_RATE_HZ // 2).astype(np.float32),
        "silence 2 s": silence(2.0),
    }


def with_end_tokens(folder: Path, dest: Path, extra: list[int]) -> Path:
    """A copy of the checkpoint whose generation config also ends on `extra` ids."""
    shutil.copytree(folder, dest)
    path = dest / "generation_config.json"
    config = json.loads(path.read_text())
    ends = config["eos_token_id"]
    config["eos_token_id"] = (ends if isinstance(ends, list) else [ends]) + extra
    path.write_text(json.dumps(config))
    return dest


def test_static_cache_ids_equal_generate(plain, static, audios):
    for name, audio in audios.items():
        want = plain.generate_ids(audio)
        assert len(want) == new_token_budget(len(audio) / MIC_RATE_HZ), name  # random weights never stop
        assert static.generate_ids(audio) == want, name
        assert static.transcribe(audio) == plain.transcribe(audio), name


def test_static_cache_is_fixed_size_and_reused(static, audios):
    fast = static._fast
    assert isinstance(fast, StaticDecoder) and not fast.compiled
    processor = static.processor
    longest = processor.apply_transcription_request(np.zeros(30 * MIC_RATE_HZ, dtype=np.float32))
    assert fast.max_cache_len == longest["input_ids"].shape[1] + MAX_NEW_TOKENS
    static.generate_ids(audios["tokyo"])
    keys = fast.cache.layers[0].keys
    assert keys.shape[2] == fast.max_cache_len
    first = static.generate_ids(audios["lights"])
    assert fast.cache.layers[0].keys.data_ptr() == keys.data_ptr()  # the same buffer, reset in place
    assert static.generate_ids(audios["lights"]) == first


def test_min_new_tokens_forces_the_exact_length(tiny_glmasr_folder, tmp_path, audios):
    speech = audios["lights"]
    free = GlmAsrEngine.load(str(tiny_glmasr_folder), decode="plain").generate_ids(speech, max_new_tokens=20)
    # The checkpoint now ends on the token generated 6th, so free decoding stops there.
    stop_id = free[5]
    stop_at = free.index(stop_id)
    folder = with_end_tokens(tiny_glmasr_folder, tmp_path / "ends", [stop_id])
    for mode in ("plain", "static"):
        engine = GlmAsrEngine.load(str(folder), decode=mode)
        stopped = engine.generate_ids(speech, max_new_tokens=20)
        assert stopped == free[: stop_at + 1], mode
        forced = engine.generate_ids(speech, max_new_tokens=12, min_new_tokens=12)
        assert len(forced) == 12, mode
        assert stop_id not in forced and forced[:stop_at] == free[:stop_at], mode
        assert len(engine.generate_ids(speech, max_new_tokens=30, min_new_tokens=30)) == 30, mode
    plain_forced = GlmAsrEngine.load(str(folder), decode="plain").generate_ids(speech, 12, 12)
    assert GlmAsrEngine.load(str(folder), decode="static").generate_ids(speech, 12, 12) == plain_forced


def test_audio_beyond_the_static_cache_falls_back_to_generate(plain, static, audios):
    # A minute of audio is two encoder windows: about 800 prompt tokens, too many for the cache.
    long = np.tile(audios["lights"], 1 + int(60 * MIC_RATE_HZ) // len(audios["lights"]))[: 60 * MIC_RATE_HZ]
    prompt_len = static.processor.apply_transcription_request(long)["input_ids"].shape[1]
    assert prompt_len > 700 and not static._fast.fits(prompt_len, 150)
    assert static.generate_ids(long, 150) == plain.generate_ids(long, 150)


def test_min_above_the_budget_is_capped_by_it(static, audios):
    assert len(static.generate_ids(audios["tokyo"], max_new_tokens=5, min_new_tokens=9)) == 5


def test_move_to_the_same_device_keeps_the_decoder(tiny_glmasr_folder, audios):
    engine = GlmAsrEngine.load(str(tiny_glmasr_folder), decode="static")
    want = engine.generate_ids(audios["tokyo"])
    fast = engine._fast
    assert engine.to("cpu") is engine and engine._fast is fast
    assert engine.generate_ids(audios["tokyo"]) == want


def test_unsupported_generation_settings_refuse_the_static_path(tiny_glmasr_folder, tmp_path):
    folder = tmp_path / "penalised"
    shutil.copytree(tiny_glmasr_folder, folder)
    path = folder / "generation_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "repetition_penalty": 1.1}))
    with pytest.raises(ConfigError, match="repetition_penalty=1.1") as caught:
        GlmAsrEngine.load(str(folder), decode="static")
    assert "plain" in caught.value.hint
    engine = GlmAsrEngine.load(str(folder))  # auto: generate honours it
    assert unsupported_settings(engine.model.generation_config) == ["repetition_penalty=1.1"]


def test_bad_decode_mode_is_a_config_error(tiny_glmasr_folder):
    with pytest.raises(ConfigError, match="decode: must be one of auto, plain, static, compiled"):
        GlmAsrEngine.load(str(tiny_glmasr_folder), decode="fast")


def test_cpu_fallback_is_reported_once_with_its_reason(tiny_glmasr_folder):
    # A fresh process, so "once" does not depend on what earlier tests reported.
    script = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(name)s|%(message)s')\n"
        "from sisyphus.asr.glm import GlmAsrEngine, FAST_NAME\n"
        "from sisyphus.runtime import fastpath\n"
        "engine = GlmAsrEngine.load(sys.argv[1])\n"
        "engine.warmup(); engine.warmup()\n"
        "GlmAsrEngine.load(sys.argv[1]).warmup()\n"
        "state = fastpath.states()[FAST_NAME]\n"
        "print('STATE', state.enabled, state.detail, engine._fast is None)\n"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tiny_glmasr_folder)], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    said = [line for line in lines if line.startswith("sisyphus.runtime.fastpath|") and FAST_NAME in line]
    assert said == [f"sisyphus.runtime.fastpath|fast path {FAST_NAME}: off (device is cpu; CUDA graphs need a CUDA GPU)"]
    assert "STATE False device is cpu; CUDA graphs need a CUDA GPU True" in lines


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_compiled_cuda_path_equals_generate_and_does_not_recompile(tiny_glmasr_folder, audios):
    from torch._dynamo.utils import counters

    # fp32: random tiny weights have near-tied logits, and bf16 rounds differently in the
    # compiled kernels than in eager ones (real weights are checked by the warm-up itself).
    skips = counters["inductor"]["cudagraph_skips"]
    fast = GlmAsrEngine.load(str(tiny_glmasr_folder), device="cuda", dtype=torch.float32)
    fast.warmup()
    state = fastpath.states()[FAST_NAME]
    assert state.enabled, state.detail
    assert isinstance(fast._fast, StaticDecoder) and fast._fast.compiled
    plain = GlmAsrEngine.load(str(tiny_glmasr_folder), device="cuda", dtype=torch.float32, decode="plain")
    fast.generate_ids(audios["tokyo"])
    graphs = counters["stats"]["unique_graphs"]
    for name, audio in audios.items():
        assert fast.generate_ids(audio) == plain.generate_ids(audio), name
        assert fast.generate_ids(audio, 24, 24) == plain.generate_ids(audio, 24, 24), name
    assert counters["stats"]["unique_graphs"] == graphs  # one compiled step served every utterance
    assert counters["inductor"]["cudagraph_skips"] == skips  # the step really runs as CUDA graphs
    # The swap strategy moves the weights: the graphs would point at freed memory, so generate takes over.
    fast.to("cpu").to("cuda")
    assert fast._fast is None and not fastpath.states()[FAST_NAME].enabled
    assert fast.generate_ids(audios["lights"]) == plain.generate_ids(audios["lights"])


@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on CPU needs a C++ compiler")
@pytest.mark.skipif(compile_blocker(torch.__version__) is not None, reason="torch older than the compiled path needs")
def test_compiled_step_traces_as_one_graph_and_equals_generate(plain, tiny_glmasr_folder, audios):
    """The CUDA path's compile (fullgraph, inductor) run on the CPU: one graph for every utterance."""
    from torch._dynamo.utils import counters

    compiled = GlmAsrEngine.load(str(tiny_glmasr_folder), decode="compiled")
    assert compiled._fast is not None and compiled._fast.compiled
    first = compiled.generate_ids(audios["tokyo"], 6, 6)
    graphs = counters["stats"]["unique_graphs"]
    assert first == plain.generate_ids(audios["tokyo"], 6, 6)
    for name in ("lights", "noise 0.5 s"):
        assert compiled.generate_ids(audios[name]) == plain.generate_ids(audios[name]), name
    assert counters["stats"]["unique_graphs"] == graphs


def test_compiled_path_is_offered_from_the_oldest_torch_that_traced_it():
    assert compile_blocker("2.11.0+cu130") is None and compile_blocker("2.13.0+cpu") is None
    assert compile_blocker("3.1.0") is None
    assert compile_blocker("2.5.1+cu124") == (
        "torch 2.5.1+cu124 is older than 2.11, the oldest whose torch.compile traces the decode step"
    )
    assert compile_blocker("2.10.0") is not None


@pytest.mark.skipif(compile_blocker(torch.__version__) is None, reason="this torch compiles the decode step")
def test_old_torch_refuses_decode_compiled_with_a_hint_and_auto_says_why(tiny_glmasr_folder):
    """Runs in the oldest env (tests/compat): torch 2.5.1 cannot trace the step, so it is not tried."""
    with pytest.raises(ConfigError, match=r"decode=compiled: torch .* is older than 2\.11") as caught:
        GlmAsrEngine.load(str(tiny_glmasr_folder), decode="compiled")
    assert "static" in caught.value.hint
    from sisyphus.asr.glm import _fast_path_blocker

    engine = GlmAsrEngine.load(str(tiny_glmasr_folder), decode="static")  # the eager static path still runs
    assert _fast_path_blocker(engine.model, "cuda:0") == compile_blocker(torch.__version__)
