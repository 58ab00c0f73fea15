"""Streaming endpointing with the real Silero model on real (espeak-ng) speech.

Speech boundaries are checked against an independent measure: where each sentence was
placed in the timeline plus its voiced span from the clip's energy (not from Silero).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sisyphus.config import VadConfig
from sisyphus.frames import MIC_RATE_HZ, SpeechStarted, Utterance
from sisyphus.vad import Endpointer, load_silero_model
from tests.support.speech import blocks, click, espeak, have_espeak, timeline

T0_S = 1000.0  # session clock at the first sample, so times are not accidentally offsets
TOLERANCE_S = 0.1
PRE_ROLL_SAMPLES = 10 * 512  # the default 320 ms pre-roll in whole 512-sample frames

if not have_espeak():
    pytest.fail("espeak-ng is not installed (apt-get install espeak-ng); VAD tests need real speech", pytrace=False)


@pytest.fixture(scope="module")
def silero():
    return load_silero_model()


@pytest.fixture(scope="module")
def sentences() -> tuple[np.ndarray, np.ndarray]:
    return (
        espeak("Hello there, how are you doing today?"),
        espeak("Please tell me the weather forecast for tomorrow."),
    )


@pytest.fixture(scope="module")
def conversation(sentences):
    """0.8 s, sentence, 1.5 s, sentence, 1.0 s, over a faint noise floor."""
    return timeline([0.8, sentences[0], 1.5, sentences[1], 1.0], background=1e-3)


def silence_only(**fields) -> VadConfig:
    """Turns end on silence alone, no preemptive pauses: what these tests check."""
    return VadConfig(turn_model="none", preempt_silence_ms=None, **fields)


def run(endpointer: Endpointer, audio: np.ndarray, block: int) -> list[tuple[float, SpeechStarted | Utterance]]:
    """Push audio block by block; each event comes with the time of the block that produced it."""
    out = []
    for samples, t_s in blocks(audio, block, t0_s=T0_S):
        out.extend((t_s, event) for event in endpointer.push(samples, t_s))
    return out


@pytest.mark.parametrize("block", [512, 320, 1000])
def test_two_sentences_are_two_utterances_with_speech_boundaries(silero, conversation, block):
    audio, segments = conversation
    config = silence_only()
    events = run(Endpointer(config, model=silero), audio, block)

    kinds = [type(event).__name__ for _, event in events]
    assert kinds == ["SpeechStarted", "Utterance", "SpeechStarted", "Utterance"]
    for i, segment in enumerate(segments):
        (pushed_at, started), (_, utterance) = events[2 * i], events[2 * i + 1]
        assert utterance.final is True
        assert started.t_s == pytest.approx(utterance.start_s, abs=1e-9)
        assert utterance.start_s - T0_S == pytest.approx(segment.voiced_start_s, abs=TOLERANCE_S)
        assert utterance.end_s - T0_S == pytest.approx(segment.voiced_end_s, abs=TOLERANCE_S)
        # The turn is announced once min_speech_ms of speech was heard, not at its end.
        heard_s = pushed_at - started.t_s
        assert config.min_speech_ms / 1000 <= heard_s < config.min_speech_ms / 1000 + 0.15 + block / MIC_RATE_HZ
        # It ends after min_silence_ms of silence (within a frame).
        waited_s = utterance.detected_s - utterance.end_s
        assert config.min_silence_ms / 1000 <= waited_s < config.min_silence_ms / 1000 + 0.04
        # The samples are the stream's own audio, from pre-roll before the onset.
        first = round((utterance.start_s - T0_S) * MIC_RATE_HZ) - PRE_ROLL_SAMPLES
        assert utterance.start_s - T0_S - first / MIC_RATE_HZ >= 0.3
        # Silero fires a little after the first (unvoiced) sound; the pre-roll still covers it.
        assert first / MIC_RATE_HZ <= segment.voiced_start_s - 0.2
        np.testing.assert_array_equal(utterance.samples, audio[first : first + len(utterance.samples)])
        # ... and reach past the end of speech (a tail), but not to the detection point.
        last_s = (first + len(utterance.samples)) / MIC_RATE_HZ
        assert utterance.end_s - T0_S + 0.1 < last_s <= utterance.detected_s - T0_S


def test_block_size_does_not_change_the_result(silero, conversation):
    audio, _ = conversation
    results = []
    for block in (512, 160, 4096):
        events = run(Endpointer(silence_only(), model=silero), audio, block)
        results.append(
            [(round(e.start_s, 6), round(e.end_s, 6), len(e.samples)) for _, e in events if isinstance(e, Utterance)]
        )
    assert results[0] == results[1] == results[2]
    assert len(results[0]) == 2


def test_in_speech_is_true_only_inside_a_turn(silero, conversation):
    audio, _ = conversation
    endpointer = Endpointer(silence_only(), model=silero)
    states = []
    for samples, t_s in blocks(audio, 512, t0_s=T0_S):
        for event in endpointer.push(samples, t_s):
            states.append((type(event).__name__, endpointer.in_speech))
    assert states == [("SpeechStarted", True), ("Utterance", False), ("SpeechStarted", True), ("Utterance", False)]


@pytest.mark.parametrize("blip", ["click", "speech_100ms"])
def test_a_blip_shorter_than_min_speech_is_not_a_turn(silero, sentences, blip):
    if blip == "click":
        sound = click(0.03)
    else:  # 100 ms out of the middle of a word: speech, but too short to be a turn
        sound = sentences[0][int(0.5 * MIC_RATE_HZ) : int(0.6 * MIC_RATE_HZ)]
    audio, _ = timeline([1.0, sound, 1.5, sound, 1.5], background=1e-3)
    assert run(Endpointer(silence_only(min_speech_ms=200), model=silero), audio, 512) == []
    if blip == "speech_100ms":
        # The same audio is a turn when a 32 ms minimum is allowed: min_speech_ms is what rejects it.
        events = run(Endpointer(silence_only(min_speech_ms=32), model=silero), audio, 512)
        assert [type(e).__name__ for _, e in events][:2] == ["SpeechStarted", "Utterance"]


def test_long_speech_is_cut_into_pieces_no_longer_than_max(silero):
    long_sentence = espeak(
        "The quick brown fox jumps over the lazy dog while the small cat sleeps near the warm fire "
        "and the old man reads a long book about the history of the sea"
    )
    audio, (segment,) = timeline([0.6, long_sentence, 1.0], background=1e-3)
    config = silence_only(max_utterance_s=3.0)
    events = [e for _, e in run(Endpointer(config, model=silero), audio, 1000)]

    assert isinstance(events[0], SpeechStarted)
    pieces = events[1:]
    assert all(isinstance(p, Utterance) for p in pieces)
    assert len(pieces) >= 3
    assert [p.final for p in pieces] == [False] * (len(pieces) - 1) + [True]
    assert all(len(p.samples) <= config.max_utterance_s * MIC_RATE_HZ for p in pieces)
    assert pieces[0].start_s == pytest.approx(events[0].t_s, abs=1e-9)
    for before, after in zip(pieces, pieces[1:]):
        assert after.start_s == pytest.approx(before.end_s, abs=1e-9)
    assert pieces[0].start_s - T0_S == pytest.approx(segment.voiced_start_s, abs=TOLERANCE_S)
    assert pieces[-1].end_s - T0_S == pytest.approx(segment.voiced_end_s, abs=TOLERANCE_S)
    # Together the pieces are the continuous audio: nothing lost or repeated at the cuts.
    first = round((pieces[0].start_s - T0_S) * MIC_RATE_HZ) - PRE_ROLL_SAMPLES
    joined = np.concatenate([p.samples for p in pieces])
    np.testing.assert_array_equal(joined, audio[first : first + len(joined)])


def test_reset_drops_the_turn_in_progress(silero, sentences):
    endpointer = Endpointer(silence_only(), model=silero)
    audio, _ = timeline([0.5, sentences[0]], background=1e-3)
    events = run(endpointer, audio, 512)
    assert [type(e).__name__ for _, e in events] == ["SpeechStarted"]
    assert endpointer.in_speech
    endpointer.reset()
    assert not endpointer.in_speech
    assert run(endpointer, np.zeros(2 * MIC_RATE_HZ, dtype=np.float32), 512) == []


def test_flush_ends_a_turn_at_end_of_input(silero, sentences):
    endpointer = Endpointer(silence_only(), model=silero)
    audio, (segment,) = timeline([0.5, sentences[0]], background=1e-3)
    run(endpointer, audio[: round(segment.voiced_end_s * MIC_RATE_HZ)], 512)
    (utterance,) = endpointer.flush()
    assert utterance.final and not endpointer.in_speech
    assert utterance.end_s - T0_S == pytest.approx(segment.voiced_end_s, abs=TOLERANCE_S)
    assert endpointer.flush() == []


def test_int16_and_column_blocks_are_accepted(silero, conversation):
    audio, _ = conversation
    as_int16 = np.round(audio * 32767).astype(np.int16)[:, None]
    events = run(Endpointer(silence_only(), model=silero), as_int16, 512)
    assert [type(e).__name__ for _, e in events] == ["SpeechStarted", "Utterance"] * 2
    with pytest.raises(ValueError, match="mono"):
        Endpointer(silence_only(), model=silero).push(np.zeros((512, 2), dtype=np.float32), 0.0)


def test_loading_silero_keeps_the_process_thread_count():
    """silero_vad sets torch to one thread on import; the loader must undo that."""
    script = (
        "import torch; torch.set_num_threads(2); import {module}; {call}; print(torch.get_num_threads())"
    )
    ours = script.format(module="sisyphus.vad.endpointer as e", call="e.load_silero_model()")
    theirs = script.format(module="silero_vad", call="None")
    counts = [
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
        for code in (ours, theirs)
    ]
    assert counts == ["2", "1"]
