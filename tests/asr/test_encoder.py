"""The encoder run apart from the model's forward (what its CUDA graph replays) gives the forward's exact result.

On the CPU the graph itself cannot run, but the split it depends on can: encoder + projector
over the padded window, the audio tokens put into the prompt embeddings, the language model
on `inputs_embeds`. Bitwise equal to the forward, and the static decoder using it equals
`generate`. The graph's replay against eager is checked on CUDA.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sisyphus.asr.encoder import EncoderGraph, encoder_and_projector, prompt_embeddings
from sisyphus.asr.fast import ENCODER_NAME, StaticDecoder, cache_api
from sisyphus.asr.glm import GlmAsrEngine
from sisyphus.frames import MIC_RATE_HZ
from sisyphus.runtime import fastpath
from tests.support.speech import espeak, silence


@pytest.fixture(scope="module")
def audios() -> dict[str, np.ndarray]:
    lights = espeak("Turn on the lights in the kitchen, please.")
    return {
        "lights": lights,
        "noise 0.5 s": np.random.default_rng(3).normal(0.0, 0.05, MIC_RATE_HZ // 2).astype(np.float32),
        "lights in 29 s": np.concatenate([lights, silence(29.0 - len(lights) / MIC_RATE_HZ)]),
    }


class EagerWindow:
    """Stands in for EncoderGraph on the CPU: the same split, run eagerly."""

    graph = "eager"

    def __init__(self, model) -> None:
        self.encode = encoder_and_projector(model)
        self.calls = 0

    def fits(self, features: torch.Tensor) -> bool:
        return features.shape[0] == 1

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.encode(features)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_split_prefill_is_bitwise_the_forward(tiny_glmasr_folder, audios, dtype):
    from transformers import DynamicCache

    engine = GlmAsrEngine.load(str(tiny_glmasr_folder), dtype=dtype, decode="plain")
    model, keyword = engine.model, cache_api(engine.model).keyword
    encode = encoder_and_projector(model)
    for name, audio in audios.items():
        with torch.inference_mode():
            inputs = dict(engine.processor.apply_transcription_request(audio).to("cpu", dtype=dtype))
            assert inputs["input_features"].shape == (1, 128, 3000), name  # always the 30 s window
            whole, split = DynamicCache(config=model.config), DynamicCache(config=model.config)
            want = model(**inputs, **{keyword: whole}, use_cache=True)
            embeds = prompt_embeddings(model, inputs["input_ids"], encode(inputs["input_features"]))
            got = model(inputs_embeds=embeds, attention_mask=inputs["attention_mask"], **{keyword: split}, use_cache=True)
        assert torch.equal(got.logits, want.logits), name
        for a, b in zip(whole.layers, split.layers, strict=True):
            assert torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values), name


def test_static_decoder_with_the_split_prefill_equals_generate(tiny_glmasr_folder, audios):
    plain = GlmAsrEngine.load(str(tiny_glmasr_folder), decode="plain")
    engine = GlmAsrEngine.load(str(tiny_glmasr_folder), decode="static")
    assert engine._fast.encoder is None  # no graph off CUDA
    window = engine._fast.encoder = EagerWindow(engine.model)
    for name, audio in audios.items():
        assert engine.generate_ids(audio) == plain.generate_ids(audio), name
    assert window.calls == len(audios)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_encoder_graph_replays_eager_bitwise_on_cuda(tiny_glmasr_folder, audios, dtype):
    engine = GlmAsrEngine.load(str(tiny_glmasr_folder), device="cuda", dtype=dtype, decode="plain")
    graph = EncoderGraph(engine.model, (1, 128, 3000), dtype, torch.device("cuda"))
    encode = encoder_and_projector(engine.model)
    with torch.inference_mode():
        for name, audio in audios.items():
            features = engine.processor.apply_transcription_request(audio).to("cuda", dtype=dtype)["input_features"]
            assert torch.equal(graph(features), encode(features)), name
    fast = StaticDecoder(engine.model, max_cache_len=1024, compiled=True, features_shape=(1, 128, 3000))
    assert isinstance(fast.encoder, EncoderGraph)
    fast.close()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fast_path_on_cuda_runs_the_encoder_graph(tiny_glmasr_folder, audios):
    fast = GlmAsrEngine.load(str(tiny_glmasr_folder), device="cuda", dtype=torch.float32)
    fast.warmup()
    assert fastpath.states()[ENCODER_NAME].enabled, fastpath.states()[ENCODER_NAME].detail
    plain = GlmAsrEngine.load(str(tiny_glmasr_folder), device="cuda", dtype=torch.float32, decode="plain")
    for name, audio in audios.items():
        assert fast.generate_ids(audio) == plain.generate_ids(audio), name
