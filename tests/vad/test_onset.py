"""The endpointer's early signal for barge-in: SpeechOnset, then SpeechStarted or SpeechDismissed.

Real Silero on espeak-ng speech; only an Endpointer made with `onset_events=True` sends
them, so a plain endpointer's event stream is unchanged.
"""

from __future__ import annotations

import dataclasses

import pytest

from sisyphus.config import VadConfig
from sisyphus.frames import SpeechDismissed, SpeechOnset, SpeechStarted
from sisyphus.vad import Endpointer, load_silero_model
from tests.support.speech import blocks, espeak, have_espeak, timeline, voiced_span

T0_S = 1000.0
# Silence alone ends turns and nothing is prepared at pauses: only the events under test.
PLAIN = VadConfig(turn_model="none", preempt_silence_ms=None)
pytestmark = pytest.mark.skipif(not have_espeak(), reason="needs espeak-ng")


@pytest.fixture(scope="module")
def silero():
    return load_silero_model()


def run(endpointer: Endpointer, audio) -> list:
    events = []
    for samples, t_s in blocks(audio, 512, t0_s=T0_S):
        events.extend(endpointer.push(samples, t_s))
    return events + endpointer.flush()


def test_speech_is_announced_early_by_an_onset_at_the_same_start(silero):
    audio, (segment,) = timeline([0.6, espeak("Hello there, how are you doing today?"), 1.0], background=1e-3)
    events = run(Endpointer(PLAIN, model=silero, onset_events=True), audio)
    assert [type(e).__name__ for e in events] == ["SpeechOnset", "SpeechStarted", "Utterance"]
    onset, started = events[0], events[1]
    assert onset.t_s == pytest.approx(started.t_s, abs=1e-6)  # same first voiced frame
    assert onset.t_s - T0_S == pytest.approx(segment.voiced_start_s, abs=0.1)
    # 3 voiced frames (96 ms) make an onset; 200 ms of them make speech: 4 frames later at least.
    assert started.detected_s - onset.detected_s >= 4 * 0.032 - 1e-6
    assert onset.detected_s - onset.t_s == pytest.approx(3 * 0.032, abs=0.033)
    plain = run(Endpointer(PLAIN, model=silero), audio)
    assert [type(e).__name__ for e in plain] == ["SpeechStarted", "Utterance"]  # unchanged without the option


def test_voiced_frames_that_never_become_speech_are_dismissed(silero):
    word = espeak("Oh")
    start = int(voiced_span(word)[0] * 16_000)
    blip = word[start : start + 2_400]  # 150 ms: past the 96 ms onset, short of 200 ms of speech
    audio, _ = timeline([0.5, blip, 1.0], background=1e-3)
    events = run(Endpointer(PLAIN, model=silero, onset_events=True), audio)
    assert [type(e) for e in events] == [SpeechOnset, SpeechDismissed]
    assert events[1].t_s == pytest.approx(events[0].t_s, abs=1e-6)
    # A longer threshold never fires on it, so nothing needs dismissing either.
    assert run(Endpointer(dataclasses.replace(PLAIN, pause_after_ms=192), model=silero, onset_events=True), audio) == []


def test_an_input_ending_during_a_candidate_dismisses_it(silero):
    word = espeak("Oh")
    start = int(voiced_span(word)[0] * 16_000)
    audio, _ = timeline([0.5, word[start : start + 2_400]])
    endpointer = Endpointer(PLAIN, model=silero, onset_events=True)
    pushed = []
    for samples, t_s in blocks(audio, 512, t0_s=T0_S):
        pushed.extend(endpointer.push(samples, t_s))
    assert [type(e) for e in pushed] == [SpeechOnset]
    assert [type(e) for e in endpointer.flush()] == [SpeechDismissed]
    assert not isinstance(pushed[0], SpeechStarted)
