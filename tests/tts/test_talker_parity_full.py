"""The talker at the full 1.7B layer shapes against the reference (few frames, one case).

Every layer has the official 1.7B widths (talker 2048/6144, 16 heads of 128 with 8 KV
heads, text 2048 x 151936, predictor 1024/3072 with 5 layers, the 2048->1024 projection).
The talker keeps 4 of its 28 layers so the test stays within memory and about a minute on
a 2-core CPU; SISYPHUS_PARITY_FULL_DEPTH=1 runs all 28 (about 12 GB per process).
Weights are stored in bf16 and both sides compute in fp32.
"""

from __future__ import annotations

import gc
import os

import pytest
import torch

from sisyphus.tts.qwen3.synthetic import official_files, write_checkpoint
from sisyphus.tts.qwen3.tokenizer import TextTokenizer
from tests.tts.parity_cases import compare, make_case, run_oracle

pytestmark = [pytest.mark.parity, pytest.mark.slow]

FRAMES = 3


def test_full_size_layers_match_reference(tmp_path):
    files = official_files("custom_voice", "1b7")
    config = files["config.json"]
    if os.environ.get("SISYPHUS_PARITY_FULL_DEPTH") != "1":
        config["talker_config"]["num_hidden_layers"] = 4
    folder = write_checkpoint(tmp_path / "cv_full", config, files["generation_config.json"],
                              files["tokenizer_config.json"], seed=5, dtype=torch.bfloat16)
    gc.collect()
    tok = TextTokenizer(folder)
    case = make_case(folder, tok, "hello world, this is a test.", frames=FRAMES, language="english",
                     speaker="ryan", instruct="speak slowly")
    (ref,) = run_oracle([case], tmp_path)
    res = compare(folder, case, ref)
    assert res.prefill_diff < 1e-4, res.prefill_diff
    assert res.talker_logit_diff < 1e-4 * max(1.0, res.logit_scale), (res.talker_logit_diff, res.logit_scale)
    assert res.predictor_logit_diff < 1e-3, res.predictor_logit_diff
    assert torch.equal(res.ours_codes, res.ref_codes), (res.ours_codes, res.ref_codes)
