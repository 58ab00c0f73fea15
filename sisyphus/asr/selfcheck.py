"""The ASR fast path's warm-up self-check: teacher-forced logits against transformers' `generate`.

Comparing free-running ids is exact only in fp32. In bf16 the top two logits of a step are
often one or two rounding steps apart (on random weights, and on real ones at uncertain
words), so a compiled kernel that sums in another order may pick the other token; from
there the two runs read different prompts and every later step differs, and a correct
fast path would be switched off. So the check runs `generate` once (forced length, raw
logits kept), feeds the ids it chose through the fast path (teacher forcing), and compares
the two logit rows of every step with a tolerance that fits the dtype: in fp32 the fast
path must also pick exactly `generate`'s ids. A broken cache or step (a wrong slot, a
stale prompt, a position off by one) moves logits by a large fraction of their range and
fails it.

Checked on the CPU (tests/asr/test_selfcheck.py): in bf16 the inductor-compiled step stays
inside the tolerance while a corrupted cache or position falls outside it.
"""

from __future__ import annotations

import math
from typing import Any

import torch

# Largest allowed |fast - generate| of a step's fp32 logits, as a fraction of that step's
# largest |logit|. bf16 keeps 8 significant bits (one rounding step is 0.4-0.8 % of a value)
# and rounding differences compound over the layers; fp16 keeps 11; fp32 differs only in
# summation order. Measured in bf16 on the CPU over 16 teacher-forced steps: correct paths
# differ by up to 1.1 % (the static cache, eager, official widths with 4 + 4 layers) and
# 3.8 % (the inductor-compiled step, tiny model); broken ones by 10 % (the prompt's last
# key lost, official widths) to 180 % (positions off by one, tiny model).
LOGIT_RTOL = {torch.float32: 1e-3, torch.float16: 0.02, torch.bfloat16: 0.08}


def logit_tolerance(dtype: torch.dtype) -> float:
    return LOGIT_RTOL.get(dtype, LOGIT_RTOL[torch.bfloat16])


def compare_logits(
    fast: torch.Tensor, reference: torch.Tensor, reference_ids: list[int], dtype: torch.dtype, banned: list[int]
) -> str:
    """"" when the fast path's teacher-forced logits agree with `generate`'s; else what differs, first step first.

    `fast` and `reference` are (steps, vocab) fp32 logits before any processor; `banned`
    (the end tokens, banned during a forced length) are masked out before picking ids.
    """
    if fast.shape != reference.shape:
        return f"logits of shape {tuple(fast.shape)} against generate's {tuple(reference.shape)}"
    rtol = logit_tolerance(dtype)
    fast, reference = fast.float().cpu(), reference.float().cpu()
    for step, want in enumerate(reference_ids):
        row, ref = fast[step], reference[step]
        finite = ref[ref.isfinite()]
        allowed = max(float(finite.abs().max()) if finite.numel() else 0.0, 1e-6) * rtol
        diff = float(torch.where(row == ref, 0.0, (row - ref).abs()).max())  # equal infinities agree
        if not diff <= allowed:  # NaN fails too
            return f"step {step}: logits differ by {diff:.3g}, more than {allowed:.3g} ({rtol:g} of the largest)"
        if dtype == torch.float32:
            row = row.clone()
            row[banned] = -math.inf
            picked = int(row.argmax())
            if picked != want:
                return f"step {step}: fp32 fast path picks id {picked}, generate {want}"
    return ""


def reference_logits(
    model: Any, inputs: dict[str, torch.Tensor], tokens: int, minimum: int, pad_token_id: int | None
) -> tuple[list[int], torch.Tensor]:
    """`generate`'s greedy ids (at most `tokens`, at least `minimum`) and the raw fp32 logits it chose them from."""
    prompt_len = inputs["input_ids"].shape[1]
    out = model.generate(
        **inputs,
        do_sample=False,
        num_beams=1,
        max_new_tokens=tokens,
        min_new_tokens=minimum or None,
        use_cache=True,
        pad_token_id=pad_token_id,
        output_logits=True,
        return_dict_in_generate=True,
    )
    ids = out.sequences[0, prompt_len:].tolist()
    return ids, torch.cat([row.float() for row in out.logits])


def self_check(fast: Any, model: Any, inputs: dict[str, torch.Tensor], tokens: int, pad_token_id: int | None) -> str:
    """Run (compile, capture) the fast path and compare it with `generate`: "" when it may be used."""
    dtype = next(model.parameters()).dtype
    first = fast.generate(dict(inputs), tokens, tokens)
    again = fast.generate(dict(inputs), tokens, tokens)  # a replay of what the first call captured
    if first != again:
        return f"self-check failed: two fast runs on the same audio differ ({first[:6]}... vs {again[:6]}...)"
    ids, reference = reference_logits(model, inputs, tokens, tokens, pad_token_id)
    logits = fast.teacher_forced_logits(dict(inputs), ids)
    problem = compare_logits(logits, reference, ids, dtype, fast.end_ids)
    if problem:
        return f"self-check failed: {problem}"
    if dtype == torch.float32:  # free stopping too: exact ids are expected in fp32
        free = fast.generate(dict(inputs), tokens, 0)
        want, _ = reference_logits(model, inputs, tokens, 0, pad_token_id)
        if free != want:
            return f"self-check failed: free-running fast ids {free[:6]}... differ from generate's {want[:6]}..."
    return ""
