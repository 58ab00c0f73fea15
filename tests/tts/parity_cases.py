"""Shared machinery of the talker parity tests: build cases, run the oracle, compare.

Each case is run by the reference (tests/oracle/ref_talker.py, greedy, exactly K frames)
and by Sisyphus on the same checkpoint and the same token ids. Sisyphus is compared
teacher-forced (fed the reference's codes) so one near-tie cannot derail the rest, and
free-running greedy, which must reproduce the reference's codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from sisyphus.tts.qwen3.checkpoint import load_net
from sisyphus.tts.qwen3.config import load_configs
from sisyphus.tts.qwen3.generator import FrameGenerator, StepRecord
from sisyphus.tts.qwen3.layout import build_layout, embed_layout
from sisyphus.tts.qwen3.tokenizer import TextTokenizer
from tests.oracle.refenv import run_reference

ORACLE = Path(__file__).resolve().parents[1] / "oracle" / "ref_talker.py"


@dataclass
class Result:
    prefill_diff: float
    talker_logit_diff: float
    predictor_logit_diff: float
    ours_codes: torch.Tensor
    ref_codes: torch.Tensor
    logit_scale: float


def run_oracle(cases: list[dict], tmp: Path) -> list[dict]:
    torch.save(cases, tmp / "cases.pt")
    run_reference(ORACLE, str(tmp / "cases.pt"), str(tmp / "ref_out.pt"))
    return torch.load(tmp / "ref_out.pt")


def make_case(folder: Path, tok: TextTokenizer, text: str, *, frames: int, language: str, speaker: str | None = None,
              instruct: str | None = None, text_in_prompt: bool = True, spk_embedding: torch.Tensor | None = None,
              ref_text: str | None = None, ref_code: torch.Tensor | None = None) -> dict:
    texts = [("text", text)]
    texts += [("instruct", instruct)] if instruct else []
    texts += [("ref", ref_text)] if ref_text else []
    return {
        "folder": str(folder), "texts": texts, "frames": frames, "language": language, "speaker": speaker,
        "input_ids": tok.text_ids(text), "instruct_ids": tok.instruct_ids(instruct) if instruct else None,
        "ref_ids": tok.ref_ids(ref_text) if ref_text else None, "non_streaming_mode": text_in_prompt,
        "spk_embedding": spk_embedding, "ref_code": ref_code, "x_vector_only": ref_text is None,
    }


def load_ours(folder: Path):
    cfg, sampling = load_configs(folder)
    return cfg, sampling, load_net(folder, cfg, "cpu", torch.float32)


def compare(folder: Path, case: dict, ref: dict) -> Result:
    cfg, sampling, net = load_ours(folder)
    talker = net.talker
    icl = case["ref_ids"] is not None
    lay = build_layout(cfg, case["input_ids"], language=case["language"], speaker=case["speaker"],
                       has_speaker_vector=case["spk_embedding"] is not None, instruct_ids=case["instruct_ids"],
                       ref_ids=case["ref_ids"], ref_frames=case["ref_code"].shape[0] if icl else 0,
                       text_in_prompt=case["non_streaming_mode"])
    prefill, trailing = embed_layout(talker, lay, case["spk_embedding"], case["ref_code"] if icl else None)
    pad = talker.text_embed(torch.tensor([cfg.tts_pad_id]))
    k = case["frames"]
    ref_codes = ref["codes"]
    assert ref_codes.shape == (k, 16), ref_codes.shape

    def generator() -> FrameGenerator:
        return FrameGenerator(talker, prefill, trailing, pad, sampling, max_frames=k, min_frames=k, greedy=True)

    forced, records = generator(), []
    for i in range(k):
        forced.step(force=ref_codes[i], record=records)
    ours_talker = torch.stack([r.talker_logits[0] for r in records] + [forced.state.logits[0].float()])
    ours_pred = torch.stack([torch.stack([g[0] for g in r.predictor_logits]) for r in records])
    free = generator()
    ours_codes = torch.stack([free.step() for _ in range(k)])
    return Result(
        prefill_diff=float((prefill - ref["prefill"]).abs().max()) if prefill.shape == ref["prefill"].shape
        else float("inf"),
        talker_logit_diff=float((ours_talker - ref["talker_logits"]).abs().max()),
        predictor_logit_diff=float((ours_pred - ref["predictor_logits"]).abs().max()),
        ours_codes=ours_codes, ref_codes=ref_codes,
        logit_scale=float(ref["talker_logits"].abs().max()),
    )


__all__ = ["Result", "StepRecord", "compare", "make_case", "run_oracle"]
