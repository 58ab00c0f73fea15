"""The pipeline stage's later runs: semantic end of turn and prepared replies, against plain silence.

The same clips, the same server and models, three sessions: one whose turns end after
`vad.min_silence_ms` with no reply prepared ahead (the pipeline figures), one with Smart
Turn deciding after the short silence and a reply prepared at the first short pause
(held back until the turn is confirmed), and one with prepared replies alone (turns
still end on the plain silence), which tells the two effects apart. Voice to voice is
measured the same way in all (end of speech to the first reply sound), so the
differences are what the user gains; target: median at least 150 ms lower with both.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any

from sisyphus.bench.context import BenchContext
from sisyphus.config import Config, VadConfig

STAGE = "pipeline"
VOICE_TO_VOICE = "voice to voice, semantic end of turn + prepared replies"
PREPARED_ONLY = "voice to voice, prepared replies alone"
ENDPOINT_SILENCE = "endpoint silence, semantic end of turn"
HEAD_START = "prepared reply head start"
TARGET_GAIN_MS = 150.0


def turn_taking(config: Config, *, semantic: bool, prepared: bool) -> Config:
    """The config with Smart Turn on or off and replies prepared at a pause or not."""
    preempt = (config.vad.preempt_silence_ms or VadConfig().preempt_silence_ms) if prepared else None
    vad = dataclasses.replace(config.vad, turn_model="smart-turn" if semantic else "none", preempt_silence_ms=preempt)
    return dataclasses.replace(config, vad=vad)


def report_prepared_only(ctx: BenchContext, result: Any, plain_result: Any, *, warmup: int) -> None:
    """Voice to voice with prepared replies but turns ending on the plain silence."""
    from sisyphus.bench.pipeline import turn_figures

    turns, left_out = turn_figures(result, warmup)
    if turns:
        ctx.report.add(STAGE, PREPARED_ONLY, "ms", [t.voice_to_voice_ms for t in turns],
                       "same clips; turns end on vad.min_silence_ms", meta={"clips": [t.clip for t in turns]})
    _compare(ctx, "prepared replies alone", turns, turn_figures(plain_result, warmup)[0])
    for text in left_out:
        ctx.report.note(STAGE, f"prepared-only run: {text}")


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
    _compare(ctx, "semantic end of turn + prepared replies", turns, plain_turns,
             f" (target: ≥ {TARGET_GAIN_MS:.0f} ms lower)")
    for text in left_out + result.errors[:3] + ([result.stopped] if result.stopped else []):
        ctx.report.note(STAGE, f"semantic run: {text}")


def _compare(ctx: BenchContext, label: str, turns: list, plain_turns: list, target: str = "") -> None:
    if not (turns and plain_turns):
        return
    plain = statistics.median(t.voice_to_voice_ms for t in plain_turns)
    other = statistics.median(t.voice_to_voice_ms for t in turns)
    change = f"{plain - other:.0f} ms lower" if other <= plain else f"{other - plain:.0f} ms higher"
    ctx.report.note(STAGE, f"median voice to voice {plain:.0f} ms with plain silence, {other:.0f} ms with {label}: "
                           f"{change}{target}")


def _head_starts(result: Any, warmup: int) -> list[float]:
    return [latency.extra["head_start_ms"] for latency in result.attempts[warmup:]
            if latency is not None and "head_start_ms" in latency.extra]
