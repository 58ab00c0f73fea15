"""End of turn through the real endpointer: Silero + Smart Turn on espeak-ng speech, and the pause events.

Finished sentences end after the short silence; sentences that trail off ("I'd like to
book a table for, um") wait, so a continuation after the pause stays in the same turn.
The pause/resume events (for replies prepared ahead) are checked with a scripted turn
model, so their timing and audio can be stated exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from sisyphus.config import VadConfig
from sisyphus.frames import MIC_RATE_HZ, SpeechResumed, SpeechStarted, Utterance
from sisyphus.vad import Endpointer, load_silero_model
from sisyphus.vad.endpointer import FRAME_S, TURN_WINDOW_FRAMES
from sisyphus.vad.turn import SmartTurn
from tests.support.speech import blocks, espeak, have_espeak, timeline

if not have_espeak():
    pytest.fail("espeak-ng is not installed (apt-get install espeak-ng); VAD tests need real speech", pytrace=False)

T0_S = 500.0
TOLERANCE_S = 0.1
FINISHED = ("Tell me a joke.", "Thank you very much.", "I'd like to book a table for two at seven tonight.")
TRAILING = ("I'd like to book a table for, um", "My favourite colour is, uh")
CONTINUATION = "for two people at seven."


@pytest.fixture(scope="module")
def silero():
    return load_silero_model()


@pytest.fixture(scope="module")
def smart_turn():
    return SmartTurn()


def run(endpointer: Endpointer, audio: np.ndarray) -> list:
    return [event for samples, t_s in blocks(audio, 512, t0_s=T0_S) for event in endpointer.push(samples, t_s)]


def frames_of(ms: int) -> float:
    """The wait of `ms` as the endpointer counts it: whole 32 ms frames, to the last sample of the last one."""
    return -(-ms / 1000 // FRAME_S) * FRAME_S - 1 / MIC_RATE_HZ


@pytest.mark.parametrize("text", FINISHED)
def test_a_finished_sentence_ends_after_the_short_silence(silero, smart_turn, text):
    config = VadConfig(preempt_silence_ms=None)
    audio, (segment,) = timeline([0.6, espeak(text), 2.5], background=1e-3)
    events = run(Endpointer(config, model=silero, turn_model=smart_turn), audio)

    assert [type(e).__name__ for e in events] == ["SpeechStarted", "Utterance"]
    utterance = events[1]
    decision = utterance.decision
    assert decision.reason == "complete"
    assert decision.probability >= config.turn_threshold
    waited_s = utterance.detected_s - utterance.end_s
    assert waited_s == pytest.approx(frames_of(config.complete_silence_ms), abs=1e-6)
    assert decision.silence_ms == pytest.approx(waited_s * 1000)
    assert decision.model_ms > 0
    assert utterance.end_s - T0_S == pytest.approx(segment.voiced_end_s, abs=TOLERANCE_S)


@pytest.mark.parametrize("text", TRAILING)
def test_a_trailing_off_sentence_waits_for_its_continuation(silero, smart_turn, text):
    config = VadConfig()
    pause_s = 0.9  # well past the short silence, well short of the long one
    audio, (first, second) = timeline([0.6, espeak(text), pause_s, espeak(CONTINUATION), 2.5], background=1e-3)
    events = run(Endpointer(config, model=silero, turn_model=smart_turn), audio)

    utterances = [e for e in events if isinstance(e, Utterance)]
    assert len(utterances) == 1, [type(e).__name__ for e in events]
    (utterance,) = utterances
    # One turn from the first word to the end of the continuation.
    assert utterance.start_s - T0_S == pytest.approx(first.voiced_start_s, abs=TOLERANCE_S)
    assert utterance.end_s - T0_S == pytest.approx(second.voiced_end_s, abs=TOLERANCE_S)
    # At the pause: a TurnPaused (a reply may be prepared), then speech resumed.
    at_pause = [e for e in events if not isinstance(e, Utterance) and first.voiced_end_s < _t(e) - T0_S
                < second.voiced_start_s + TOLERANCE_S]
    assert [type(e).__name__ for e in at_pause] == ["TurnPaused", "SpeechResumed"]


@pytest.mark.parametrize("text", TRAILING)
def test_a_trailing_off_sentence_left_alone_ends_after_the_long_silence(silero, smart_turn, text):
    config = VadConfig(preempt_silence_ms=None)
    audio, (segment,) = timeline([0.6, espeak(text), 2.5], background=1e-3)
    events = run(Endpointer(config, model=silero, turn_model=smart_turn), audio)

    (utterance,) = [e for e in events if isinstance(e, Utterance)]
    decision = utterance.decision
    assert decision.reason == "incomplete" and decision.probability < config.turn_threshold
    assert utterance.detected_s - utterance.end_s == pytest.approx(frames_of(config.incomplete_silence_ms), abs=1e-6)
    assert utterance.end_s - T0_S == pytest.approx(segment.voiced_end_s, abs=TOLERANCE_S)


def _t(event) -> float:
    return event.t_s if isinstance(event, (SpeechStarted, SpeechResumed)) else event.detected_s


class ScriptedTurnModel:
    """Answers the given probabilities in turn and keeps the audio it was asked about."""

    def __init__(self, *probabilities: float) -> None:
        self.probabilities = list(probabilities)
        self.heard: list[np.ndarray] = []

    def complete_probability(self, samples_16k: np.ndarray) -> float:
        self.heard.append(samples_16k.copy())
        return self.probabilities.pop(0)


def test_pause_events_carry_the_speech_so_far_and_the_model_hears_the_last_8_s(silero):
    long_sentence = espeak("The quick brown fox jumps over the lazy dog while the small cat sleeps near the warm "
                           "fire and the old man reads a book", words_per_minute=140)
    assert len(long_sentence) > 8.3 * MIC_RATE_HZ
    audio, (first, second) = timeline([0.5, long_sentence, 0.7, espeak("Thank you."), 2.0], background=1e-3)
    model = ScriptedTurnModel(0.2, 0.5)  # incomplete at the first pause, complete (= threshold) at the end
    # 160 ms: longer than the gaps between espeak's words, shorter than the pauses placed here.
    config = VadConfig(preempt_silence_ms=160, complete_silence_ms=200, incomplete_silence_ms=1500)
    events = run(Endpointer(config, model=silero, turn_model=model), audio)

    kinds = [type(e).__name__ for e in events]
    assert kinds == ["SpeechStarted", "TurnPaused", "SpeechResumed", "TurnPaused", "Utterance"], kinds
    started, paused, resumed, paused_again, utterance = events
    # Each pause comes after preempt_silence_ms of silence; the model is asked at complete_silence_ms.
    for pause in (paused, paused_again):
        assert pause.detected_s - pause.end_s == pytest.approx(frames_of(160), abs=1e-6)
        assert pause.start_s == started.t_s
    assert paused.end_s - T0_S == pytest.approx(first.voiced_end_s, abs=TOLERANCE_S)
    assert resumed.t_s - T0_S == pytest.approx(second.voiced_start_s, abs=TOLERANCE_S)
    # A pause's audio is the turn's audio so far: the final utterance starts with exactly it.
    np.testing.assert_array_equal(utterance.samples[: len(paused.samples)], paused.samples)
    np.testing.assert_array_equal(paused_again.samples, utterance.samples[: len(paused_again.samples)])
    assert paused_again.end_s == utterance.end_s  # the same words: no speech between them
    # Asked twice, each time with at most the last 8 s, ending at the frame it was asked on.
    assert len(model.heard) == 2
    assert len(paused.samples) > TURN_WINDOW_FRAMES * 512  # the turn so far is longer than 8 s ...
    assert len(model.heard[0]) == TURN_WINDOW_FRAMES * 512  # ... the model hears its last 8 s
    start = round((utterance.start_s - T0_S) * MIC_RATE_HZ) - 10 * 512  # pre-roll
    asked_at = round((utterance.detected_s - T0_S) * MIC_RATE_HZ) + 1
    np.testing.assert_array_equal(model.heard[1], audio[asked_at - len(model.heard[1]) : asked_at])
    assert start < asked_at - len(model.heard[1])
    assert utterance.decision.reason == "complete" and utterance.decision.probability == 0.5
    assert utterance.detected_s - utterance.end_s == pytest.approx(frames_of(200), abs=1e-6)


def test_without_a_turn_model_the_plain_silence_ends_the_turn_and_pauses_still_come(silero):
    audio, (segment,) = timeline([0.5, espeak("Thank you very much."), 1.5], background=1e-3)
    config = VadConfig(turn_model="none", min_silence_ms=400, preempt_silence_ms=128)
    events = run(Endpointer(config, model=silero), audio)

    assert [type(e).__name__ for e in events] == ["SpeechStarted", "TurnPaused", "Utterance"]
    paused, utterance = events[1], events[2]
    assert paused.detected_s - paused.end_s == pytest.approx(frames_of(128), abs=1e-6)
    assert utterance.detected_s - utterance.end_s == pytest.approx(frames_of(400), abs=1e-6)
    assert utterance.decision.reason == "silence" and utterance.decision.probability is None
    assert isinstance(events[0], SpeechStarted)


def test_flush_mid_turn_says_the_input_ended(silero):
    audio, (segment,) = timeline([0.5, espeak("Thank you very much.")], background=1e-3)
    endpointer = Endpointer(VadConfig(preempt_silence_ms=None), model=silero, turn_model=ScriptedTurnModel())
    run(endpointer, audio[: round(segment.voiced_end_s * MIC_RATE_HZ)])
    (utterance,) = endpointer.flush()
    assert utterance.decision.reason == "input ended"
