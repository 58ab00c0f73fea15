"""GlmAsrEngine on a tiny random GLM-ASR checkpoint in the official layout: real loading, real generate."""

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
from safetensors.torch import load_file, save_file
from transformers import GlmAsrForConditionalGeneration, GlmAsrProcessor

from sisyphus.asr import SpeechRecognizer
from sisyphus.asr.glm import MIN_AUDIO_S, GlmAsrEngine, new_token_budget, pick_dtype
from sisyphus.errors import ConfigError, ModelError
from sisyphus.frames import MIC_RATE_HZ
from tests.support.speech import espeak
from sisyphus.asr.synthetic import write_tiny_glmasr

# processor_config.json of zai-org/GLM-ASR-Nano-2512, which the tiny checkpoint must match.
OFFICIAL_PROCESSOR_CONFIG = {
    "audio_token": "<|pad|>",
    "default_transcription_prompt": "Please transcribe this audio into text",
    "feature_extractor": {
        "chunk_length": 30,
        "dither": 0.0,
        "feature_extractor_type": "WhisperFeatureExtractor",
        "feature_size": 128,
        "hop_length": 160,
        "n_fft": 400,
        "n_samples": 480000,
        "nb_max_frames": 3000,
        "padding_side": "right",
        "padding_value": 0.0,
        "return_attention_mask": False,
        "sampling_rate": 16000,
    },
    "max_audio_len": 655,
    "processor_class": "GlmAsrProcessor",
}


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    return write_tiny_glmasr(tmp_path_factory.mktemp("glmasr") / "GLM-ASR-tiny")


@pytest.fixture(scope="module")
def engine(tiny_folder) -> GlmAsrEngine:
    return GlmAsrEngine.load(str(tiny_folder))


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return espeak("Turn on the lights in the kitchen, please.")


def copy_without(folder: Path, dest: Path, *names: str) -> Path:
    shutil.copytree(folder, dest, ignore=shutil.ignore_patterns(*names))
    return dest


def test_tiny_checkpoint_is_in_the_official_layout(tiny_folder):
    names = {p.name for p in tiny_folder.iterdir()}
    assert {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "processor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
    } <= names
    assert json.loads((tiny_folder / "processor_config.json").read_text()) == OFFICIAL_PROCESSOR_CONFIG
    config = json.loads((tiny_folder / "config.json").read_text())
    assert (config["model_type"], config["architectures"], config["dtype"]) == (
        "glmasr",
        ["GlmAsrForConditionalGeneration"],
        "bfloat16",
    )


def test_engine_loads_on_cpu_in_fp32_and_is_a_speech_recognizer(engine):
    assert isinstance(engine, SpeechRecognizer)
    assert (engine.device, engine.dtype) == ("cpu", torch.float32)
    assert next(engine.model.parameters()).dtype == torch.float32
    assert engine.model.training is False


def test_transcribe_is_deterministic_and_matches_transformers_generate(engine, tiny_folder, speech):
    first = engine.transcribe(speech)
    assert first == engine.transcribe(speech)
    assert isinstance(first, str) and len(first) > 0

    # The same request built and run with transformers directly, outside the engine.
    processor = GlmAsrProcessor.from_pretrained(tiny_folder)
    model = GlmAsrForConditionalGeneration.from_pretrained(tiny_folder, dtype=torch.float32).eval()
    budget = new_token_budget(len(speech) / MIC_RATE_HZ)
    inputs = processor.apply_transcription_request(speech)
    assert "Please transcribe this audio into text" in processor.tokenizer.decode(inputs["input_ids"][0])
    with torch.inference_mode():
        output = model.generate(**inputs, do_sample=False, max_new_tokens=budget)
    expected_ids = output[0, inputs["input_ids"].shape[1] :].tolist()

    ids = engine.generate_ids(speech)
    assert ids == expected_ids
    assert 0 < len(ids) <= budget
    assert first == processor.tokenizer.decode(expected_ids, skip_special_tokens=True).strip()


def test_output_depends_on_the_audio(engine, speech):
    other = espeak("What time is it in Tokyo?")
    assert engine.generate_ids(speech) != engine.generate_ids(other)


def test_token_budget_grows_with_audio_and_is_capped():
    assert new_token_budget(1.0) == 28
    assert new_token_budget(10.0) == 136
    assert new_token_budget(600.0) == 512


def test_empty_or_too_short_audio_gives_empty_text(engine):
    too_short = np.full(int(MIN_AUDIO_S * MIC_RATE_HZ) - 1, 0.1, dtype=np.float32)
    assert engine.transcribe(np.zeros(0, dtype=np.float32)) == ""
    assert engine.transcribe(too_short) == ""
    assert engine.generate_ids(too_short) == []


def test_warmup_runs_generate(engine):
    engine.warmup()  # must not raise; a real generate of at most 4 tokens
    noise = np.random.default_rng(0).normal(0.0, 1e-3, MIC_RATE_HZ).astype(np.float32)
    assert len(engine.generate_ids(noise, max_new_tokens=4)) == 4


def test_to_returns_the_engine_on_its_new_device(engine, speech):
    before = engine.transcribe(speech)
    assert engine.to("cpu") is engine
    assert engine.device == "cpu" and next(engine.model.parameters()).device.type == "cpu"
    assert engine.transcribe(speech) == before


def test_stereo_audio_is_refused(engine):
    with pytest.raises(ValueError, match="mono"):
        engine.transcribe(np.zeros((16000, 2), dtype=np.float32))


def test_folder_without_weights_is_a_one_line_model_error(tiny_folder, tmp_path):
    folder = copy_without(tiny_folder, tmp_path / "no-weights", "*.safetensors")
    with pytest.raises(ModelError) as caught:
        GlmAsrEngine.load(str(folder))
    message = caught.value.one_line()
    assert "\n" not in message
    assert str(folder) in message and "model.safetensors" in message


def test_folder_without_tokenizer_names_the_missing_files(tiny_folder, tmp_path):
    folder = copy_without(tiny_folder, tmp_path / "no-tokenizer", "tokenizer.json", "processor_config.json")
    with pytest.raises(ModelError, match="missing processor_config.json, tokenizer.json"):
        GlmAsrEngine.load(str(folder))


def test_corrupt_weights_are_a_model_error(tiny_folder, tmp_path):
    folder = copy_without(tiny_folder, tmp_path / "corrupt", "model.safetensors")
    data = (tiny_folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="could not be loaded"):
        GlmAsrEngine.load(str(folder))


def test_weights_missing_a_tensor_are_a_model_error(tiny_folder, tmp_path):
    folder = copy_without(tiny_folder, tmp_path / "partial", "model.safetensors")
    tensors = load_file(tiny_folder / "model.safetensors")
    dropped = sorted(name for name in tensors if "multi_modal_projector" in name)[0]
    del tensors[dropped]
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelError, match="incomplete: 1 tensors missing") as caught:
        GlmAsrEngine.load(str(folder))
    assert dropped in caught.value.message


def test_other_model_type_is_refused(tiny_folder, tmp_path):
    folder = copy_without(tiny_folder, tmp_path / "tts", "config.json")
    config = json.loads((tiny_folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "qwen3_tts"}))
    with pytest.raises(ModelError, match="not a GLM-ASR checkpoint"):
        GlmAsrEngine.load(str(folder))


def test_missing_local_folder_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        GlmAsrEngine.load(str(tmp_path / "nowhere"))


def test_repo_id_is_found_in_the_local_hub_cache(tiny_folder, tmp_path, speech, engine):
    """The layout huggingface_hub writes: models--owner--name/{refs/main, snapshots/<rev>/...}."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--zai-org--GLM-ASR-Nano-2512"
    shutil.copytree(tiny_folder, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    cached = GlmAsrEngine.load("zai-org/GLM-ASR-Nano-2512", cache_dir=str(tmp_path / "hub"))
    assert cached.folder == repo / "snapshots" / revision
    assert cached.transcribe(speech) == engine.transcribe(speech)


def test_repo_id_not_in_cache_names_models_pull(tmp_path):
    with pytest.raises(ModelError) as caught:
        GlmAsrEngine.load("zai-org/GLM-ASR-Nano-2512", cache_dir=str(tmp_path))
    assert caught.value.message == "ASR model zai-org/GLM-ASR-Nano-2512 is not downloaded"
    assert "sisyphus models pull" in caught.value.hint


def test_repo_id_not_in_cache_with_empty_hf_home_offline(tmp_path):
    """HF_HOME/HF_HUB_OFFLINE are read when huggingface_hub is imported, hence a fresh process."""
    code = (
        "from sisyphus.asr.glm import GlmAsrEngine\n"
        "from sisyphus.errors import ModelError\n"
        "try:\n"
        "    GlmAsrEngine.load('zai-org/GLM-ASR-Nano-2512')\n"
        "except ModelError as exc:\n"
        "    print(exc.one_line())\n"
        "    raise SystemExit(exc.exit_code)\n"
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert result.stdout.strip().splitlines() == [
        "ASR model zai-org/GLM-ASR-Nano-2512 is not downloaded. run `sisyphus models pull asr`"
    ]


def test_pick_dtype_on_cpu():
    assert pick_dtype("cpu", "auto") == torch.float32
    assert pick_dtype("cpu", "bf16") == torch.bfloat16
    assert pick_dtype("cpu", "fp16") == torch.float16
    with pytest.raises(ConfigError, match="dtype"):
        pick_dtype("cpu", "int8")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_engine_on_cuda_uses_bf16_or_fp16(tiny_folder, speech):
    gpu = GlmAsrEngine.load(str(tiny_folder), device="cuda")
    expected = torch.bfloat16 if torch.cuda.get_device_capability()[0] >= 8 else torch.float16
    assert gpu.dtype == expected == pick_dtype("cuda", "auto")
    assert next(gpu.model.parameters()).device.type == "cuda"
    gpu.warmup()
    text = gpu.transcribe(speech)
    assert isinstance(text, str) and text == gpu.transcribe(speech)
    assert 0 < len(gpu.generate_ids(speech)) <= new_token_budget(len(speech) / MIC_RATE_HZ)
    # The swap strategy parks the model on the CPU and brings it back.
    gpu.to("cpu").to("cuda")
    assert gpu.device == "cuda" and gpu.transcribe(speech) == text


def test_utterances_from_the_endpointer_transcribe(engine):
    """VAD output is what ASR gets in `talk`: float32 16 kHz pieces, pre-roll included."""
    from sisyphus.config import VadConfig
    from sisyphus.frames import Utterance
    from sisyphus.vad import Endpointer
    from tests.support.speech import blocks, timeline

    audio, _ = timeline([0.5, espeak("Good morning."), 1.0, espeak("Read me the news."), 1.0], background=1e-3)
    endpointer = Endpointer(VadConfig())
    utterances = [e for b, t in blocks(audio, 512) for e in endpointer.push(b, t) if isinstance(e, Utterance)]
    assert len(utterances) == 2
    texts = [engine.transcribe(u.samples) for u in utterances]
    assert all(isinstance(t, str) and t for t in texts)
    assert texts[0] != texts[1]
