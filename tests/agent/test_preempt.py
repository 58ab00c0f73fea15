"""Replies prepared at a pause: held back unheard, played when the turn ends there, dropped when it goes on.

The controller runs with the hand-written engines of tests/agent/fakes.py. Each case
waits until the prepared reply has produced its first audio (so it *could* have played)
before the turn goes on or ends.
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from sisyphus.agent.controller import TurnController
from sisyphus.frames import (
    AssistantSaid,
    PreemptiveReply,
    SpeechResumed,
    SpeechStarted,
    State,
    StateChanged,
    TurnDecision,
    TurnEnded,
    TurnLatency,
    TurnPaused,
    UserSaid,
    Utterance,
)
from tests.agent.fakes import SAMPLES_PER_WORD, ManualSink, ScriptedASR, ScriptedLLM, SentenceChunker, ToneTTS
from tests.agent.test_controller import RecordingHistory, drain, wait_for_event

TIMEOUT_S = 10
SPEECH = np.zeros(16000, np.float32)
DECISION = TurnDecision("complete", 224.0, 0.93, 11.0)


class SignallingTTS:
    """ToneTTS that says when it has produced a chunk (on the TTS thread)."""

    sample_rate_hz = ToneTTS.sample_rate_hz

    def __init__(self) -> None:
        self.tone = ToneTTS()
        self.first_chunk = threading.Event()

    @property
    def phrases(self) -> list[tuple[str, str]]:
        return self.tone.phrases

    def stream(self, text, voice, *, language=None, cancel=None):
        for chunk in self.tone.stream(text, voice, language=language, cancel=cancel):
            self.first_chunk.set()
            yield chunk


def controller_for(llm, asr):
    events: asyncio.Queue = asyncio.Queue()
    history, tts, sink = RecordingHistory(), SignallingTTS(), ManualSink()
    controller = TurnController(asr=asr, llm=llm, tts=tts, sink=sink, history=history,
                                make_chunker=SentenceChunker, events=events, voice="vivian")
    return controller, events, history, tts, sink


def paused(end_s: float) -> TurnPaused:
    return TurnPaused(SPEECH, start_s=end_s - 1.0, end_s=end_s, detected_s=end_s + 0.096)


def ended(end_s: float) -> Utterance:
    return Utterance(SPEECH, start_s=end_s - 1.0, end_s=end_s, detected_s=end_s + 0.224, decision=DECISION)


async def held_reply_ready(tts: SignallingTTS, sink: ManualSink) -> None:
    """The prepared reply has audio (it could play now); assert nothing reached the speaker."""
    assert await asyncio.to_thread(tts.first_chunk.wait, TIMEOUT_S)
    await asyncio.sleep(0.05)  # let the reply task run past its first chunk if it (wrongly) would write it
    assert sink.log == []


def test_a_turn_that_ends_at_the_pause_plays_the_reply_prepared_there():
    async def scenario():
        llm, asr = ScriptedLLM(["Sure, for two. At seven."]), ScriptedASR(["book a table"])
        controller, events, history, tts, sink = controller_for(llm, asr)
        inputs: asyncio.Queue = asyncio.Queue()
        runner = asyncio.create_task(controller.run(inputs))
        inputs.put_nowait(SpeechStarted(1.0))
        inputs.put_nowait(paused(2.0))
        await held_reply_ready(tts, sink)
        seen = drain(events)
        assert [e for e in seen if not isinstance(e, StateChanged)] == []  # nothing said, nothing shown
        inputs.put_nowait(ended(2.0))
        await wait_for_event(seen, events, lambda e: isinstance(e, AssistantSaid))
        inputs.put_nowait(None)
        await asyncio.wait_for(runner, TIMEOUT_S)
        return seen + drain(events), history, sink, llm, asr

    seen, history, sink, llm, asr = asyncio.run(scenario())
    assert asr.calls == 1 and len(llm.requests) == 1  # the end of turn cost no second ASR or LLM call
    assert llm.requests[0][-1] == {"role": "user", "content": "book a table"}
    assert sink.written == {1: 5 * SAMPLES_PER_WORD} and "write 0" not in sink.log
    assert history.pairs == [("book a table", "Sure, for two. At seven.")]
    assert [e for e in seen if isinstance(e, UserSaid)] == [UserSaid(1, "book a table")]
    assert [e for e in seen if isinstance(e, TurnEnded)] == [TurnEnded(1, DECISION)]
    (hit,) = [e for e in seen if isinstance(e, PreemptiveReply)]
    assert hit.hit and hit.turn_id == 1 and hit.text == "book a table" and hit.head_start_ms > 0
    states = [e.state for e in seen if isinstance(e, StateChanged)]
    assert states == [State.LISTENING, State.THINKING, State.SPEAKING, State.IDLE]  # no TRANSCRIBING: ASR was done
    latency = next(e for e in seen if isinstance(e, TurnLatency))
    assert latency.asr_ms is not None and latency.extra["endpoint_ms"] == pytest.approx(224.0)
    assert latency.extra["head_start_ms"] == hit.head_start_ms


def test_a_turn_that_goes_on_drops_the_prepared_reply_unheard():
    async def scenario():
        llm = ScriptedLLM(["Early reply.", "The real answer."])
        asr = ScriptedASR(["book a table", "book a table for two at seven"])
        controller, events, history, tts, sink = controller_for(llm, asr)
        inputs: asyncio.Queue = asyncio.Queue()
        runner = asyncio.create_task(controller.run(inputs))
        inputs.put_nowait(SpeechStarted(1.0))
        inputs.put_nowait(paused(2.0))
        await held_reply_ready(tts, sink)
        inputs.put_nowait(SpeechResumed(2.6))
        inputs.put_nowait(ended(4.0))
        seen: list = []
        await wait_for_event(seen, events, lambda e: isinstance(e, AssistantSaid))
        inputs.put_nowait(None)
        await asyncio.wait_for(runner, TIMEOUT_S)
        return seen + drain(events), history, sink, llm, tts

    seen, history, sink, llm, tts = asyncio.run(scenario())
    assert ("vivian", "Early reply.") in tts.phrases  # it was prepared, with audio ...
    assert sink.written == {1: 3 * SAMPLES_PER_WORD} and "write 0" not in sink.log  # ... and never played
    assert history.pairs == [("book a table for two at seven", "The real answer.")]
    assert all("Early reply." not in m["content"] for m in llm.requests[1])
    assert [e for e in seen if isinstance(e, UserSaid)] == [UserSaid(1, "book a table for two at seven")]
    assert [e for e in seen if isinstance(e, AssistantSaid)] == [
        AssistantSaid(1, "The real answer.", False, "The real answer.")
    ]
    assert [e for e in seen if isinstance(e, PreemptiveReply)] == [PreemptiveReply(hit=False, text="book a table")]
    kinds = [type(e).__name__ for e in seen]
    assert kinds.index("PreemptiveReply") < kinds.index("UserSaid")


def test_a_pause_with_no_words_prepares_nothing_and_the_turn_runs_as_usual():
    async def scenario():
        llm, asr = ScriptedLLM(["Hello."]), ScriptedASR(["", "hi"])
        controller, events, history, tts, sink = controller_for(llm, asr)
        inputs: asyncio.Queue = asyncio.Queue()
        for item in (SpeechStarted(1.0), paused(2.0), ended(2.0), None):
            inputs.put_nowait(item)
        await asyncio.wait_for(controller.run(inputs), TIMEOUT_S)
        return drain(events), history, asr, llm

    seen, history, asr, llm = asyncio.run(scenario())
    assert asr.calls == 2 and len(llm.requests) == 1
    assert history.pairs == [("hi", "Hello.")]
    assert not [e for e in seen if isinstance(e, PreemptiveReply)]
    assert [e for e in seen if isinstance(e, TurnEnded)] == [TurnEnded(1, DECISION)]


def test_a_session_that_ends_mid_pause_leaves_the_prepared_reply_unheard():
    async def scenario():
        llm, asr = ScriptedLLM(["Never heard."]), ScriptedASR(["so the thing is"])
        controller, events, history, tts, sink = controller_for(llm, asr)
        inputs: asyncio.Queue = asyncio.Queue()
        runner = asyncio.create_task(controller.run(inputs))
        inputs.put_nowait(SpeechStarted(1.0))
        inputs.put_nowait(paused(2.0))
        await held_reply_ready(tts, sink)
        inputs.put_nowait(None)
        await asyncio.wait_for(runner, TIMEOUT_S)
        return drain(events), history, sink, controller

    seen, history, sink, controller = asyncio.run(scenario())
    assert sink.log == [] and history.pairs == [] and controller.turns_done == 0
    assert [e for e in seen if isinstance(e, PreemptiveReply)] == [PreemptiveReply(hit=False, text="so the thing is")]
    assert not [e for e in seen if isinstance(e, (AssistantSaid, UserSaid))]


def test_a_reply_prepared_after_chinese_pieces_joins_them_without_spaces():
    async def scenario():
        llm, asr = ScriptedLLM(["好的。"]), ScriptedASR(["我想订", "两个人的桌子"])
        controller, events, history, tts, sink = controller_for(llm, asr)
        inputs: asyncio.Queue = asyncio.Queue()
        runner = asyncio.create_task(controller.run(inputs))
        inputs.put_nowait(SpeechStarted(1.0))
        inputs.put_nowait(Utterance(SPEECH, start_s=1.0, end_s=26.0, detected_s=26.1, final=False))
        inputs.put_nowait(paused(28.0))
        await held_reply_ready(tts, sink)
        inputs.put_nowait(ended(28.0))
        seen: list = []
        await wait_for_event(seen, events, lambda e: isinstance(e, AssistantSaid))
        inputs.put_nowait(None)
        await asyncio.wait_for(runner, TIMEOUT_S)
        return seen + drain(events), llm

    seen, llm = asyncio.run(scenario())
    assert llm.requests[0][-1] == {"role": "user", "content": "我想订两个人的桌子"}
    assert [e for e in seen if isinstance(e, UserSaid)] == [UserSaid(1, "我想订两个人的桌子")]
