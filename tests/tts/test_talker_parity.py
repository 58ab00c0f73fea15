"""Sisyphus's talker + code predictor + prompts against the reference qwen-tts package.

Same random weights (official layout, shrunk widths, official vocabularies and ids), same
token ids, greedy decoding, exactly K frames. One reference process runs every case.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sisyphus.tts.qwen3.layers import Rotary, apply_rotary
from sisyphus.tts.qwen3.synthetic import official_files, shrink_config, write_random_model
from sisyphus.tts.qwen3.tokenizer import TextTokenizer
from tests.tts.parity_cases import compare, make_case, run_oracle
from tests.tts.support import one_torch_thread  # noqa: F401 (fixture)

pytestmark = [pytest.mark.parity, pytest.mark.usefixtures("one_torch_thread")]

PREFILL_TOL = 1e-5
LOGIT_TOL = 1e-4

TOKENIZE = [
    "hello world, this is a test.",
    "The voice is testing 123 times; 4.5% of 2026!",
    "Grüße, café - naïve? «quoted»",
    "你好，世界。今天天气很好。",
    "  leading and trailing spaces  ",
    "line one\nline two",
]


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("talker_parity")
    cv = write_random_model(tmp / "cv1b7", "custom_voice", "1b7", seed=1)
    small = write_random_model(tmp / "cv0b6", "custom_voice", "0b6", seed=2)
    base = write_random_model(tmp / "base1b7", "base", "1b7", seed=3)
    tok = TextTokenizer(cv)
    gen = torch.Generator().manual_seed(4)
    spk = torch.randn(64, generator=gen) * 0.05
    codes = torch.randint(0, 2048, (12, 16), generator=gen)
    cases = {
        "plain": make_case(cv, tok, "hello world, this is a test.", frames=6, language="english", speaker="vivian"),
        "instruct_dialect": make_case(cv, tok, "the voice is testing", frames=6, language="auto", speaker="dylan",
                                      instruct="speak slowly, with joy"),
        "text_trails": make_case(cv, tok, "hello the world", frames=8, language="chinese", speaker="ryan",
                                 text_in_prompt=False),
        "small": make_case(small, tok, "hello world", frames=5, language="english", speaker="aiden"),
        # Clones: text trailing the audio is the reference's default for clones.
        "icl_text_trails": make_case(base, tok, "this is a test of the voice, testing", frames=6, language="english",
                                     text_in_prompt=False, spk_embedding=spk, ref_text="hello world",
                                     ref_code=codes[:3]),
        "icl_short_text": make_case(base, tok, "hello", frames=5, language="auto", text_in_prompt=False,
                                    spk_embedding=spk, ref_text="the world", ref_code=codes),
        "icl_text_in_prompt": make_case(base, tok, "hello world", frames=5, language="german",
                                        spk_embedding=spk, ref_text="is the test", ref_code=codes[:6]),
        "x_vector_only": make_case(base, tok, "the voice is testing", frames=6, language="english",
                                   text_in_prompt=False, spk_embedding=spk),
    }
    tokenize = {"folder": str(cv), "texts": [("text", t) for t in TOKENIZE] + [("ref", TOKENIZE[1])]}
    names = list(cases)
    ropes = rope_cases()
    refs = run_oracle([cases[n] for n in names] + [tokenize] + ropes, tmp)
    return {"cases": cases, "refs": dict(zip(names, refs)), "tokenized": refs[len(names)]["tokenized"],
            "tok": tok, "rope": list(zip(ropes, refs[len(names) + 1 :]))}


@pytest.mark.parametrize("name", ["plain", "instruct_dialect", "text_trails", "small", "icl_text_trails",
                                  "icl_short_text", "icl_text_in_prompt", "x_vector_only"])
def test_talker_and_prompt_match_reference(parity, name):
    case, ref = parity["cases"][name], parity["refs"][name]
    res = compare(Path(case["folder"]), case, ref)
    assert res.prefill_diff < PREFILL_TOL, f"prefill embeddings differ by {res.prefill_diff:.3g}"
    assert res.talker_logit_diff < LOGIT_TOL * max(1.0, res.logit_scale), res.talker_logit_diff
    assert res.predictor_logit_diff < LOGIT_TOL, res.predictor_logit_diff
    assert torch.equal(res.ours_codes, res.ref_codes), (res.ours_codes, res.ref_codes)


def test_reference_loads_every_written_tensor(parity):
    # The oracle loads model.safetensors with strict=True (it fails on any missing,
    # unexpected or mis-shaped tensor) and reports how many tensors it took.
    from safetensors import safe_open

    for name in ("plain", "small", "x_vector_only"):
        path = Path(parity["cases"][name]["folder"]) / "model.safetensors"
        with safe_open(str(path), framework="pt") as f:
            written = len(list(f.keys()))
        assert parity["refs"][name]["n_tensors"] == written > 50


def test_prompt_token_ids_match_reference(parity):
    tok = parity["tok"]
    for text in TOKENIZE:
        assert tok.text_ids(text) == parity["tokenized"][f"text:{text}"], text
    assert tok.ref_ids(TOKENIZE[1]) == parity["tokenized"][f"ref:{TOKENIZE[1]}"]
    for name in ("plain", "instruct_dialect", "icl_text_trails"):
        case = parity["cases"][name]
        for kind, text in case["texts"]:
            ids = {"text": tok.text_ids, "instruct": tok.instruct_ids, "ref": tok.ref_ids}[kind](text)
            assert ids == parity["refs"][name]["tokenized"][f"{kind}:{text}"]


def rope_cases() -> list[dict]:
    """Distinct time/height/width positions exercise the interleaved section layout
    (text-only prompts give equal streams, where any layout would agree)."""
    official = official_files("custom_voice", "1b7")["config.json"]
    gen = torch.Generator().manual_seed(6)
    cases = []
    for tc in (official["talker_config"], shrink_config(official)["talker_config"]):
        hd = tc["head_dim"]
        cases.append({"talker_config": tc, "positions": torch.randint(0, 500, (3, 9), generator=gen),
                      "q": torch.randn(1, 4, 9, hd, generator=gen), "k": torch.randn(1, 2, 9, hd, generator=gen)})
    return cases


def test_multimodal_rope_matches_reference(parity):
    for case, ref in parity["rope"]:
        tc = case["talker_config"]
        rope = tc["rope_scaling"]
        rot = Rotary(tc["head_dim"], tc["rope_theta"], tuple(rope["mrope_section"]), rope["interleaved"])
        cos, sin = rot(case["positions"], torch.float32)
        for name in ("q", "k"):
            ours = apply_rotary(case[name], cos, sin)
            assert float((ours - ref[name]).abs().max()) < 1e-5, name
        plain = Rotary(tc["head_dim"], tc["rope_theta"])(case["positions"][0], torch.float32)
        assert not torch.allclose(plain[0], cos)  # the sections matter for distinct streams
