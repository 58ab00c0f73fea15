"""The swap strategy's weight arena, on tiny real checkpoints.

On the CPU: models adopted into one arena give exactly their earlier outputs whenever they
are the active one, their tensors never move (what keeps captured graphs valid), a parked
model really holds another model's bytes (so activation is what makes it right), and the
arena is the size of the largest model, not the sum. On a GPU: a `swap` session keeps both
fast paths on across swaps and says the same as a resident one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sisyphus.asr.glm import GlmAsrEngine
from sisyphus.runtime.arena import ALIGN_BYTES, WeightArena
from sisyphus.tts.qwen3 import Qwen3TTS

TEXT = "Hello world, this is the test voice."


def speak(model: Qwen3TTS) -> tuple[torch.Tensor, np.ndarray]:
    audio = np.concatenate(list(model.stream(TEXT, model.speakers[0], greedy=True, max_frames=10, min_frames=10)))
    return model.last_codes.clone(), audio


def listen(engine: GlmAsrEngine) -> list[int]:
    audio = np.random.default_rng(3).normal(0, 0.1, 32000).astype(np.float32)
    return engine.generate_ids(audio, max_new_tokens=8, min_new_tokens=8)


def addresses(modules) -> list[int]:
    return [t.data_ptr() for m in modules for t in [*m.parameters(), *m.buffers()]]


def weight_bytes(modules) -> int:
    seen = {id(t): t for m in modules for t in [*m.parameters(), *m.buffers()]}
    return sum(t.numel() * t.element_size() for t in seen.values())


def test_models_take_turns_in_one_arena_with_fixed_addresses(tiny_tts_custom_folder, tiny_glmasr_folder):
    tts = Qwen3TTS.from_pretrained(str(tiny_tts_custom_folder))
    asr = GlmAsrEngine.load(str(tiny_glmasr_folder), decode="plain")
    want_codes, want_audio = speak(tts)
    want_ids = listen(asr)
    arena = WeightArena("cpu")
    arena.adopt("tts", tts.weight_modules())
    tts.placed_on("cpu")
    arena.adopt("asr", asr.weight_modules())
    asr.placed_on("cpu")
    assert arena.members() == ["tts", "asr"] and arena.active == "asr"
    tts_at, asr_at = addresses(tts.weight_modules()), addresses(asr.weight_modules())
    sizes = [weight_bytes(tts.weight_modules()), weight_bytes(asr.weight_modules())]
    tensors = sum(1 for m in [*tts.weight_modules(), *asr.weight_modules()] for _ in m.parameters())
    assert max(sizes) <= arena.nbytes <= max(sizes) + tensors * ALIGN_BYTES < sum(sizes)
    for _ in range(2):
        assert arena.activate("tts") and not arena.activate("tts")
        codes, audio = speak(tts)
        assert torch.equal(codes, want_codes) and np.array_equal(audio, want_audio)
        assert arena.activate("asr")
        assert listen(asr) == want_ids
    assert addresses(tts.weight_modules()) == tts_at and addresses(asr.weight_modules()) == asr_at


def test_a_parked_model_holds_the_active_models_bytes(tiny_tts_custom_folder, tiny_glmasr_folder):
    tts = Qwen3TTS.from_pretrained(str(tiny_tts_custom_folder))
    asr = GlmAsrEngine.load(str(tiny_glmasr_folder), decode="plain")
    weights = [p.detach().clone() for p in tts.talker.parameters()]
    arena = WeightArena("cpu")
    arena.adopt("tts", tts.weight_modules())
    arena.adopt("asr", asr.weight_modules())  # overwrites what the TTS views see
    assert not all(torch.equal(p, w) for p, w in zip(tts.talker.parameters(), weights))
    arena.activate("tts")
    assert all(torch.equal(p, w) for p, w in zip(tts.talker.parameters(), weights))
    with pytest.raises(ValueError, match="already"):
        arena.adopt("tts", tts.weight_modules())


def test_adoption_leaves_nothing_of_a_model_behind(tiny_tts_custom_folder):
    """Every parameter, buffer and tensor kept as a plain module attribute follows the arena's
    device (meta here: what stayed on the CPU would show)."""
    model = Qwen3TTS.from_pretrained(str(tiny_tts_custom_folder))
    arena = WeightArena("meta")
    arena.adopt("tts", model.weight_modules())
    tensors = [t for m in model.weight_modules() for sub in m.modules()
               for t in [*sub._parameters.values(), *sub._buffers.values(), *vars(sub).values()]
               if isinstance(t, torch.Tensor)]
    assert len(tensors) > 100
    assert {t.device.type for t in tensors} == {"meta"}


@pytest.mark.cuda
def test_swap_keeps_both_fast_paths_on_and_the_outputs(tiny_glmasr_folder, tiny_tts_custom_folder,
                                                       tiny_tts_base_folder):
    from sisyphus.agent.models import ModelSet
    from sisyphus.asr.glm import FAST_NAME
    from sisyphus.config import load_config
    from sisyphus.runtime import fastpath

    def session(memory: str) -> tuple[ModelSet, list]:
        config = load_config(None, env={}, overrides={
            "memory": memory, "device": "cuda", "models.asr": str(tiny_glmasr_folder),
            "models.tts_custom": str(tiny_tts_custom_folder), "models.tts_base": str(tiny_tts_base_folder)})
        models = ModelSet(config, device="cuda:0", dtype=torch.float32)
        models.load_at_start("tts_custom")
        said = []
        for _ in range(3):  # ASR, then TTS, then ASR again: each a swap
            with models.using("asr"):
                said.append(listen(models.asr()))
            with models.using("tts_custom"):
                said.append(speak(models.tts("tts_custom"))[0].tolist())
        return models, said

    resident, want = session("resident")
    swapped, got = session("swap")
    assert swapped.swapping and swapped._arena.members() == ["asr", "tts_custom"]
    assert got == want
    assert swapped.tts("tts_custom").graphs is not None and swapped.asr()._fast is not None
    assert fastpath.states()["tts cuda graphs"].enabled and fastpath.states()[FAST_NAME].enabled
