"""Barge-in that does not misfire: pause on speech, resume after a backchannel, else cancel."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from sisyphus.agent.bargein import BargeInPolicy, normalize, only_backchannels
from sisyphus.agent.controller import TurnController, TypedText
from sisyphus.frames import (
    AssistantSaid,
    BargeIn,
    SpeechDismissed,
    SpeechOnset,
    SpeechStarted,
    State,
    StateChanged,
    UserSaid,
    Utterance,
)
from tests.agent.fakes import SAMPLES_PER_WORD, ManualSink, ScriptedASR, ScriptedLLM, SentenceChunker, ToneTTS
from tests.agent.test_controller import RecordingHistory, drain, wait_for_event

TIMEOUT_S = 10
REPLY = "One two three four. Five six seven eight."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),  # ASR found no words
        ("  ...  ", True),
        ("Mm-hm.", True),
        ("mm-hmm", True),  # repeated letters collapse
        ("Yeah, yeah!", True),
        ("Okay. Right.", True),
        ("I see", True),
        ("嗯嗯", True),
        ("对，对。", True),
        ("好的", True),
        ("yes please", False),
        ("okay stop", False),
        ("Stop.", False),
        ("yesterday", False),  # "yes" is a prefix, not the whole
        ("不对", False),
    ],
)
def test_only_backchannels(text, expected):
    assert only_backchannels(text) is expected


def test_a_configured_list_replaces_the_default_and_normalisation_is_symmetric():
    assert normalize("Uh-HUH!!") == "uhuh" == normalize("uh huh")
    assert only_backchannels("Jawohl, jawohl.", ("jawohl",))
    assert not only_backchannels("yeah", ("jawohl",))


def test_policy_resumes_only_short_final_backchannels():
    policy = BargeInPolicy(max_speech_ms=1000)
    assert policy.resumes("yeah", 600)
    assert not policy.resumes("yeah", 1400)  # too long to be a backchannel
    assert not policy.resumes("yeah", 600, final=False)
    assert not policy.resumes("wait a moment", 600)


def make(llm, asr, *, max_speech_ms=1500.0):
    events: asyncio.Queue = asyncio.Queue()
    history = RecordingHistory()
    sink = ManualSink(auto_play=False)
    controller = TurnController(
        asr=asr, llm=llm, tts=ToneTTS(), sink=sink, history=history, make_chunker=SentenceChunker,
        events=events, voice="vivian", backchannel=BargeInPolicy(max_speech_ms=max_speech_ms),
    )  # fmt: skip
    return controller, events, history, sink


async def start_reply(controller, events, sink, inputs, seen):
    """A typed turn whose eight words are generated and two and a half of them played."""
    runner = asyncio.create_task(controller.run(inputs))
    inputs.put_nowait(TypedText("count", 0.0))
    await wait_for_event(seen, events, lambda e: isinstance(e, StateChanged) and e.state == State.SPEAKING)
    while sink.written.get(1, 0) < 8 * SAMPLES_PER_WORD:
        await asyncio.sleep(0.01)
    sink.play(1, int(2.5 * SAMPLES_PER_WORD))
    return runner


def speech(start_s: float, seconds: float) -> Utterance:
    end_s = start_s + seconds
    return Utterance(np.zeros(int(seconds * 16000), np.float32), start_s, end_s, end_s + 0.4)


@pytest.mark.parametrize("heard", ["Mm-hm.", ""])
def test_a_backchannel_pauses_the_reply_then_resumes_it_and_the_history_holds_all_of_it(heard):
    async def scenario():
        llm = ScriptedLLM([REPLY])
        asr = ScriptedASR([heard])
        controller, events, history, sink = make(llm, asr)
        inputs: asyncio.Queue = asyncio.Queue()
        seen: list = []
        runner = await start_reply(controller, events, sink, inputs, seen)
        sink.sound_end[1] = 10.12  # the speaker went quiet 120 ms after the speech began
        inputs.put_nowait(SpeechStarted(10.0, detected_s=10.2))
        await wait_for_event(seen, events, lambda e: isinstance(e, BargeIn) and e.action == "paused")
        played_while_paused = sink.played[1]
        inputs.put_nowait(speech(10.0, 0.5))
        await wait_for_event(seen, events, lambda e: isinstance(e, BargeIn) and e.action == "resumed")
        assert sink.paused is False
        sink.auto_play = True
        sink.play(1, sink.written[1])  # the rest plays out
        inputs.put_nowait(None)
        await asyncio.wait_for(runner, TIMEOUT_S)
        return seen + drain(events), history, sink, llm, played_while_paused

    seen, history, sink, llm, played_while_paused = asyncio.run(scenario())
    assert played_while_paused == int(2.5 * SAMPLES_PER_WORD)
    assert sink.flushes == 0 and sink.log.count("pause") == 1
    assert history.pairs == [("count", REPLY)]  # all of it was heard, nothing marked cut
    said = [e for e in seen if isinstance(e, AssistantSaid)]
    assert [(e.text, e.interrupted) for e in said] == [(REPLY, False)]
    assert not [e for e in seen if isinstance(e, UserSaid) and e.turn_id != 1]  # the backchannel is no turn
    assert len(llm.requests) == 1
    barge = [e for e in seen if isinstance(e, BargeIn)]
    assert [(e.turn_id, e.action, e.text) for e in barge] == [(1, "paused", ""), (1, "resumed", heard)]
    assert barge[1].speech_ms == pytest.approx(500) and barge[1].pause_ms == pytest.approx(120)
    assert barge[1].vad_ms == pytest.approx(200)
    states = [e.state for e in seen if isinstance(e, StateChanged)]
    assert states[-4:] == [State.LISTENING, State.TRANSCRIBING, State.SPEAKING, State.IDLE]


@pytest.mark.parametrize(("heard", "seconds"), [("Wait, what about tomorrow?", 0.9), ("Yeah", 2.0)])
def test_words_or_long_speech_cancel_the_paused_reply_and_take_the_turn(heard, seconds):
    async def scenario():
        llm = ScriptedLLM([REPLY, "Tomorrow is fine."])
        asr = ScriptedASR([heard])
        controller, events, history, sink = make(llm, asr)
        inputs: asyncio.Queue = asyncio.Queue()
        seen: list = []
        runner = await start_reply(controller, events, sink, inputs, seen)
        inputs.put_nowait(SpeechStarted(10.0, detected_s=10.2))
        inputs.put_nowait(speech(10.0, seconds))
        sink.auto_play = True
        await wait_for_event(seen, events, lambda e: isinstance(e, AssistantSaid) and e.turn_id == 2)
        inputs.put_nowait(None)
        await asyncio.wait_for(runner, TIMEOUT_S)
        return seen + drain(events), history, sink

    seen, history, sink = asyncio.run(scenario())
    assert sink.log.index("pause") < sink.log.index("flush")
    assert history.pairs == [("count", "One two…"), (heard, "Tomorrow is fine.")]  # only what was heard
    barge = [(e.action, e.text) for e in seen if isinstance(e, BargeIn)]
    assert barge == [("paused", ""), ("cancelled", heard)]
    first = next(e for e in seen if isinstance(e, AssistantSaid) and e.turn_id == 1)
    assert first.interrupted and first.text == "One two"
    assert sink.paused is False  # the next reply was not held


def test_typing_over_a_paused_reply_takes_the_turn_instead_of_waiting_forever():
    async def scenario():
        llm = ScriptedLLM([REPLY, "Typed reply."])
        controller, events, history, sink = make(llm, ScriptedASR([]))
        inputs: asyncio.Queue = asyncio.Queue()
        seen: list = []
        runner = await start_reply(controller, events, sink, inputs, seen)
        inputs.put_nowait(SpeechStarted(10.0))
        inputs.put_nowait(TypedText("never mind", 11.0))
        sink.auto_play = True
        await wait_for_event(seen, events, lambda e: isinstance(e, AssistantSaid) and e.turn_id == 2)
        inputs.put_nowait(None)
        await asyncio.wait_for(runner, TIMEOUT_S)
        return history, sink

    history, sink = asyncio.run(scenario())
    assert history.pairs == [("count", "One two…"), ("never mind", "Typed reply.")]
    assert sink.paused is False


def test_voiced_frames_pause_the_reply_early_and_a_false_start_resumes_it():
    async def scenario():
        llm = ScriptedLLM([REPLY])
        controller, events, history, sink = make(llm, ScriptedASR([]))
        inputs: asyncio.Queue = asyncio.Queue()
        seen: list = []
        runner = await start_reply(controller, events, sink, inputs, seen)
        sink.sound_end[1] = 10.15
        inputs.put_nowait(SpeechOnset(10.0, detected_s=10.1))
        await wait_for_event(seen, events, lambda e: isinstance(e, BargeIn) and e.action == "paused")
        assert sink.paused
        inputs.put_nowait(SpeechDismissed(10.0))  # a cough: it never became speech
        await wait_for_event(seen, events, lambda e: isinstance(e, BargeIn) and e.action == "resumed")
        sink.auto_play = True
        sink.play(1, sink.written[1])
        inputs.put_nowait(None)
        await asyncio.wait_for(runner, TIMEOUT_S)
        return seen + drain(events), history, sink

    seen, history, sink = asyncio.run(scenario())
    assert sink.log.count("pause") == 1 and sink.flushes == 0 and not sink.paused
    assert history.pairs == [("count", REPLY)]
    barge = [e for e in seen if isinstance(e, BargeIn)]
    assert [(e.action, e.text, e.pause_ms) for e in barge] == [("paused", "", None), ("resumed", "", pytest.approx(150))]
    assert State.LISTENING not in [e.state for e in seen if isinstance(e, StateChanged)]  # never a turn


def test_an_onset_then_speech_is_one_pause_decided_when_the_speech_ends():
    async def scenario():
        llm = ScriptedLLM([REPLY, "Sure."])
        controller, events, history, sink = make(llm, ScriptedASR(["Hold on a second"]))
        inputs: asyncio.Queue = asyncio.Queue()
        seen: list = []
        runner = await start_reply(controller, events, sink, inputs, seen)
        sink.sound_end[1] = 10.09
        inputs.put_nowait(SpeechOnset(10.0, detected_s=10.1))
        inputs.put_nowait(SpeechStarted(10.0, detected_s=10.23))
        inputs.put_nowait(speech(10.0, 1.2))
        sink.auto_play = True
        await wait_for_event(seen, events, lambda e: isinstance(e, AssistantSaid) and e.turn_id == 2)
        inputs.put_nowait(None)
        await asyncio.wait_for(runner, TIMEOUT_S)
        return seen + drain(events), history, sink

    seen, history, sink = asyncio.run(scenario())
    barge = [e for e in seen if isinstance(e, BargeIn)]
    assert [e.action for e in barge] == ["paused", "cancelled"]
    assert barge[1].pause_ms == pytest.approx(90) and barge[1].vad_ms == pytest.approx(230)
    # The speaker went quiet 140 ms before the VAD had even decided it was speech.
    assert barge[1].pause_ms - barge[1].vad_ms == pytest.approx(-140)
    assert sink.log.count("pause") == 1
    assert history.pairs == [("count", "One two…"), ("Hold on a second", "Sure.")]
