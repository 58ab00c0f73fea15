"""The pipeline stage's second run: semantic end of turn and prepared replies, against plain silence.

The same clips, the same server and models, two sessions: one whose turns end after
`vad.min_silence_ms` with no reply prepared ahead, one with Smart Turn deciding after the
short silence and a reply prepared at the first short pause (held back until the turn
is confirmed). Voice to voice is measured the same way in both (end of speech to the
first reply sound), so the difference is what the user gains; target: median at least
150 ms lower.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any

from sisyphus.bench.context import BenchContext
from sisyphus.config import Config, VadConfig

STAGE = "pipeline"
VOICE_TO_VOICE = "voice to voice, semantic end of turn + prepared replies"
ENDPOINT_SILENCE = "endpoint silence, semantic end of turn"
HEAD_START = "prepared reply head start"
TARGET_GAIN_MS = 150.0


def turn_taking(config: Config, *, on: bool) -> Config:
    """The config with semantic end of turn and prepared replies on (the defaults) or both off."""
    if on:
        preempt = config.vad.preempt_silence_ms or VadConfig().preempt_silence_ms
        vad = dataclasses.replace(config.vad, turn_model="smart-turn", preempt_silence_ms=preempt)
    else:
        vad = dataclasses.replace(config.vad, turn_model="none", preempt_silence_ms=None)
    return dataclasses.replace(config, vad=vad)


def report(ctx: BenchContext, config: Config, result: Any, plain_result: Any, *, warmup: int) -> None:
    """Voice to voice of the semantic run beside the plain one's, hits and misses, and the gain."""
    from sisyphus.bench.pipeline import turn_figures

    turns, left_out = turn_figures(result, warmup)
    plain_turns, _ = turn_figures(plain_result, warmup)
    meta = {"clips": [t.clip for t in turns], "preempt_silence_ms": config.vad.preempt_silence_ms,
            "complete_silence_ms": config.vad.complete_silence_ms}
    if turns:
        ctx.report.add(STAGE, VOICE_TO_VOICE, "ms", [t.voice_to_voice_ms for t in turns],
                       "same clips; end of speech → first reply sound", meta=meta)
        ctx.report.add(STAGE, ENDPOINT_SILENCE, "ms", [t.endpoint_ms for t in turns],
                       f"vad.complete_silence_ms={config.vad.complete_silence_ms} when Smart Turn says finished",
                       meta=meta)
    head_starts = _head_starts(result, warmup)
    if head_starts:
        ctx.report.add(STAGE, HEAD_START, "ms", head_starts, "reply started this long before the end of turn",
                       meta=meta)
    hits, misses = result.prepared["hits"], result.prepared["misses"]
    ctx.report.note(STAGE, f"semantic run: {hits} prepared replies played (hits), {misses} dropped unheard (misses)")
    if turns and plain_turns:
        plain = statistics.median(t.voice_to_voice_ms for t in plain_turns)
        semantic = statistics.median(t.voice_to_voice_ms for t in turns)
        ctx.report.note(STAGE, f"median voice to voice {plain:.0f} ms with plain silence, {semantic:.0f} ms with "
                               f"semantic end of turn + prepared replies: {plain - semantic:.0f} ms lower "
                               f"(target ≥ {TARGET_GAIN_MS:.0f} ms)")
    for text in left_out + result.errors[:3] + ([result.stopped] if result.stopped else []):
        ctx.report.note(STAGE, f"semantic run: {text}")


def _head_starts(result: Any, warmup: int) -> list[float]:
    return [latency.extra["head_start_ms"] for latency in result.attempts[warmup:]
            if latency is not None and "head_start_ms" in latency.extra]
