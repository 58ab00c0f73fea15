"""The turn stage: Smart Turn's cost figures and its end-of-turn decisions on espeak-ng speech.

Checked for completeness and for what the figures mean (delays are whole VAD frames of
the configured silences), never for speed.
"""

from __future__ import annotations

import math

import pytest
import torch

from sisyphus.bench import turn
from sisyphus.bench.context import BenchContext
from sisyphus.bench.report import BenchReport
from sisyphus.config import Config
from sisyphus.vad.endpointer import FRAME_S


@pytest.mark.slow
def test_the_turn_stage_reports_cost_and_decisions():
    config = Config()
    ctx = BenchContext(config=config, device="cpu", dtype=torch.float32, repeats=1, warmup=0, random_weights=False,
                       size="real", report=BenchReport(), models=None)  # type: ignore[arg-type]
    threads = torch.get_num_threads()

    turn.run(ctx)

    assert torch.get_num_threads() == threads  # the one-thread measurement leaves the process as it was
    figures = {f.name: f for f in ctx.report.figures}
    assert sorted(figures) == sorted(["per inference", "per inference, CPU time", "features", "model",
                                      "end-of-turn delay, finished", "end-of-turn delay, trailing off"])
    cost = [figures[name] for name in ("per inference", "features", "model")]
    assert all(f.unit == "ms" and f.n == 10 and min(f.values) > 0 for f in cost)
    for total, features, model in zip(*(f.values for f in cost)):
        assert math.isclose(total, features + model)
    cpu = figures["per inference, CPU time"]
    assert cpu.n == 10 and all(0 < c <= t * 1.05 + 1 for c, t in zip(cpu.values, cost[0].values))
    short_ms = math.ceil(config.vad.complete_silence_ms / 1000 / FRAME_S) * FRAME_S * 1000 - 1000 / 16000
    long_ms = math.ceil(config.vad.incomplete_silence_ms / 1000 / FRAME_S) * FRAME_S * 1000 - 1000 / 16000
    for name, texts in (("end-of-turn delay, finished", turn.FINISHED), ("end-of-turn delay, trailing off",
                                                                         turn.TRAILING)):
        delays = figures[name].values
        assert len(delays) == len(texts)
        assert all(math.isclose(d, short_ms) or math.isclose(d, long_ms) for d in delays), delays
    finished = figures["end-of-turn delay, finished"].values
    trailing = figures["end-of-turn delay, trailing off"].values
    (summary,) = [text for _, text in ctx.report.notes if text.startswith("finished sentences")]
    ended_short = sum(math.isclose(d, short_ms) for d in finished)
    cut = sum(math.isclose(d, short_ms) for d in trailing)
    assert f"ended after the short silence: {ended_short}/{len(finished)}" in summary
    assert f"cut off there: {cut}/{len(trailing)}" in summary
    # Smart Turn tells the two kinds apart on the whole (the per-sentence figures are the report's).
    assert ended_short > len(finished) // 2 and cut < len(trailing) // 2
