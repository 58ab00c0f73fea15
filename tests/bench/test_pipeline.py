"""The pipeline stage on the tiny random checkpoints: a real session on the packaged clips.

Real Silero, the tiny GLM-ASR and Qwen3-TTS checkpoints, the stand-in LLM server on
127.0.0.1 and the real session machinery; the figures are checked for completeness and
for the arithmetic that defines them, never for speed.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import soundfile as sf

from sisyphus.agent.models import ModelSet
from sisyphus.bench import pipeline, semantic
from sisyphus.bench.clips import CLIP_TEXTS, clip_paths, clip_texts
from sisyphus.bench.context import BenchContext
from sisyphus.bench.report import BenchReport
from sisyphus.config import Config, ModelsConfig, TtsConfig, VoiceConfig


def test_clips_are_short_16k_mono_speech_with_their_texts():
    paths = clip_paths()
    assert [p.name for p in paths] == list(clip_texts()) == list(CLIP_TEXTS)
    assert 3 <= len(paths) <= 4
    assert sum(p.stat().st_size for p in paths) < 400_000
    for path in paths:
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert 1.5 <= info.duration <= 3.0
        audio, _ = sf.read(str(path), dtype="float32")
        assert abs(audio).max() > 0.1  # speech, not silence
    texts = clip_texts()
    texts.clear()
    assert clip_texts()  # callers get a copy


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, tiny_glmasr_folder, tiny_tts_custom_folder, tiny_tts_base_folder):
    import torch

    config = Config(
        device="cpu",
        models=ModelsConfig(asr=str(tiny_glmasr_folder), tts_custom=str(tiny_tts_custom_folder),
                            tts_base=str(tiny_tts_base_folder)),
        voice=VoiceConfig(default="vivian", language="english",
                          library=str(tmp_path_factory.mktemp("voices") / "voices")),
        tts=TtsConfig(seed=1),
    )
    models = ModelSet(config, device="cpu", dtype=torch.float32)
    return BenchContext(config=config, device="cpu", dtype=torch.float32, repeats=1, warmup=1,
                        random_weights=True, size="tiny", report=BenchReport(), models=models)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_pipeline_reports_every_figure_for_one_turn_per_clip(ctx):
    lines: list[str] = []
    ctx = dataclasses.replace(ctx, say=lines.append)

    pipeline.run(ctx)

    report = ctx.report
    clips = [p.name for p in clip_paths()]
    names = [pipeline.VOICE_TO_VOICE, pipeline.LLM_FIRST_TOKEN, pipeline.ENDPOINT_SILENCE, pipeline.OWN_SHARE,
             pipeline.ASR, pipeline.TTS_FIRST_AUDIO, pipeline.TTS_AUDIBLE, pipeline.OVERHEAD, pipeline.OUTPUT_WAIT,
             pipeline.LLM_CLIENT, semantic.VOICE_TO_VOICE, semantic.ENDPOINT_SILENCE, semantic.PREPARED_ONLY]
    figures = {f.name: f for f in report.figures if f.stage == "pipeline"}
    head_start = figures.pop(semantic.HEAD_START, None)
    assert list(figures) == names
    # Three times (plain silence, semantic end of turn, prepared replies alone): one warm-up turn, then
    # every clip once, in order.
    assert sum("pipeline: turn " in line for line in lines) == 3 * (1 + len(clips))
    for figure in figures.values():
        assert figure.unit == "ms"
        assert figure.n == len(clips), (figure.name, figure.values, report.notes)
        assert figure.meta["clips"] == clips

    v2v = figures[pipeline.VOICE_TO_VOICE].values
    ttft = figures[pipeline.LLM_FIRST_TOKEN].values
    silence = figures[pipeline.ENDPOINT_SILENCE].values
    own = figures[pipeline.OWN_SHARE].values
    asr = figures[pipeline.ASR].values
    tts = figures[pipeline.TTS_FIRST_AUDIO].values
    audible = figures[pipeline.TTS_AUDIBLE].values
    overhead = figures[pipeline.OVERHEAD].values
    client = figures[pipeline.LLM_CLIENT].values
    delay_ms = pipeline.FIRST_TOKEN_DELAY_S * 1000
    min_silence_ms = ctx.config.vad.min_silence_ms
    for i in range(len(clips)):
        assert math.isclose(own[i], v2v[i] - ttft[i] - silence[i], abs_tol=1e-6)
        assert math.isclose(overhead[i], own[i] - asr[i] - tts[i], abs_tol=1e-6)
        assert math.isclose(client[i], ttft[i] - delay_ms, abs_tol=1e-6)
        # The server sleeps its delay before the first token: nothing can beat that.
        assert ttft[i] >= delay_ms
        # Silence is counted in whole 32 ms VAD frames, at least vad.min_silence_ms of them.
        assert min_silence_ms <= silence[i] < min_silence_ms + 2 * 32
        assert asr[i] > 0 and tts[i] > 0 and own[i] > 0
        # Tiny random models are loud from their first sample (> -20 dBFS): heard with the first chunk.
        assert audible[i] == pytest.approx(tts[i], abs=1e-6)
        # Voice to voice holds the parts that come one after the other before any reply audio.
        assert v2v[i] > silence[i] + asr[i] + ttft[i]
    notes = [text for stage, text in report.notes if stage == "pipeline"]
    assert any(f"first token at {delay_ms:.0f} ms" in text for text in notes)
    assert any("cut at 2 s" in text for text in notes)

    # The semantic run: ended after the short silence (Smart Turn: finished) or the long one.
    short_ms = ctx.config.vad.complete_silence_ms
    for silence_ms in figures[semantic.ENDPOINT_SILENCE].values:
        assert short_ms <= silence_ms < short_ms + 2 * 32 or silence_ms >= ctx.config.vad.incomplete_silence_ms
    (counts,) = [text for text in notes if "prepared replies played" in text]
    hits = int(counts.split("semantic run: ")[1].split()[0])
    # Every turn's reply started at a pause of the clip's last words, so each played from a preparation.
    assert head_start is not None and hits >= head_start.n >= len(clips)
    assert all(value > 0 for value in head_start.values)
    gains = [text for text in notes if text.startswith("median voice to voice")]
    assert len(gains) == 2 and "(target: ≥ 150 ms lower)" in gains[0] and "with prepared replies alone" in gains[1]


def test_conversation_source_waits_for_each_turn_and_times_out_when_none_comes():
    import asyncio

    import numpy as np

    clips = [np.full(1600, 0.5, np.float32), np.full(800, 0.25, np.float32)]
    settled = {"n": 0}
    source = pipeline.ConversationSource(clips, lambda: settled["n"], block_ms=32, turn_timeout_s=1.5)

    async def consume() -> tuple[list[float], str]:
        levels: list[float] = []
        try:
            async with source:
                async for block in source:
                    levels.append(float(block.samples.max()))
                    if len(levels) == 30:
                        settled["n"] = 1  # the first turn ends 10 blocks after its clip
        except pipeline.TurnTimeout as exc:
            return levels, str(exc)
        return levels, ""

    levels, stopped = asyncio.run(consume())
    loud = [i for i, level in enumerate(levels) if level > 0]
    lead_in = pipeline._blocks_for(pipeline.LEAD_IN_S, 512)
    first = list(range(lead_in, lead_in + 4))  # 1600 samples: 4 blocks (the last padded)
    gap = pipeline._blocks_for(pipeline.GAP_AFTER_TURN_S, 512)
    second = list(range(30 + gap, 30 + gap + 2))
    assert loud == first + second
    assert stopped == "turn 2 did not finish within 1.5 s"


def test_turn_figures_skip_the_warm_up_and_say_why_a_clip_has_no_figures():
    from sisyphus.frames import TurnLatency

    def latency(turn_id: int, v2v: float | None) -> TurnLatency:
        return TurnLatency(turn_id, asr_ms=50.0, llm_first_token_ms=210.0, tts_first_audio_ms=30.0,
                           voice_to_voice_ms=v2v, extra={"endpoint_ms": 416.0})

    result = pipeline.ConversationResult(
        clips=["a.wav", "b.wav", "c.wav", "d.wav"],
        attempts=[latency(1, 900.0), None, latency(2, None), latency(3, 730.0)],
        output_wait_ms={1: 5.0, 3: 12.0},
    )
    turns, left_out = pipeline.turn_figures(result, warmup=1)

    assert left_out == ["b.wav: ASR heard nothing", "c.wav: turn 2 incomplete (no reply sound or no LLM token)"]
    (turn,) = turns
    assert (turn.clip, turn.output_wait_ms) == ("d.wav", 12.0)
    assert turn.own_share_ms == 730.0 - 210.0 - 416.0
    assert turn.overhead_ms == 730.0 - 210.0 - 416.0 - 50.0 - 30.0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_no_turn_taking_runs_one_conversation(ctx):
    """--no-turn-taking (what the GPU check uses to fit its budget): the plain run alone, and a note saying so."""
    lines: list[str] = []
    ctx = dataclasses.replace(ctx, say=lines.append, report=BenchReport(), turn_taking=False)
    pipeline.run(ctx)
    names = {f.name for f in ctx.report.figures if f.stage == "pipeline"}
    assert pipeline.VOICE_TO_VOICE in names and semantic.VOICE_TO_VOICE not in names
    assert semantic.PREPARED_ONLY not in names
    assert sum("pipeline: turn " in line for line in lines) == 1 + len(clip_paths())
    assert any("--no-turn-taking" in text for stage, text in ctx.report.notes if stage == "pipeline")
