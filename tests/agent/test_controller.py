"""The turn controller: turns, states, latencies, barge-in ordering, half duplex, errors."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from sisyphus.agent.controller import SetVoice, TurnController, TypedText
from sisyphus.errors import LLMError
from sisyphus.frames import (
    AssistantSaid,
    Notice,
    SpeechStarted,
    State,
    StateChanged,
    TurnLatency,
    UserSaid,
    Utterance,
)
from tests.agent.fakes import (
    SAMPLES_PER_WORD,
    ManualSink,
    ScriptedASR,
    ScriptedLLM,
    SentenceChunker,
    ToneTTS,
)

TIMEOUT_S = 10


class RecordingHistory:
    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []

    def messages(self, user_text: str) -> list[dict[str, str]]:
        past = [m for u, a in self.pairs for m in ({"role": "user", "content": u}, {"role": "assistant", "content": a})]
        return [{"role": "system", "content": "be brief"}, *past, {"role": "user", "content": user_text}]

    def add(self, user_text: str, assistant_text: str) -> None:
        self.pairs.append((user_text, assistant_text))


def make(llm, *, asr=None, sink=None, barge_in=True):
    events: asyncio.Queue = asyncio.Queue()
    history = RecordingHistory()
    tts = ToneTTS()
    sink = sink or ManualSink()
    controller = TurnController(
        asr=asr, llm=llm, tts=tts, sink=sink, history=history, make_chunker=SentenceChunker,
        events=events, voice="vivian", barge_in=barge_in,
    )
    return controller, events, history, tts, sink


def drain(events: asyncio.Queue) -> list[object]:
    out = []
    while not events.empty():
        out.append(events.get_nowait())
    return out


async def wait_for_event(events_seen: list, events: asyncio.Queue, predicate) -> object:
    async def waiter():
        while True:
            event = await events.get()
            events_seen.append(event)
            if predicate(event):
                return event

    return await asyncio.wait_for(waiter(), TIMEOUT_S)


def utterance(t: float, final: bool = True) -> Utterance:
    return Utterance(np.zeros(16000, np.float32), start_s=t - 1, end_s=t, detected_s=t + 0.4, final=final)


def test_typed_turn_speaks_every_phrase_and_reports_latency():
    async def scenario():
        llm = ScriptedLLM(["Hello there. How are you today?"])
        controller, events, history, tts, sink = make(llm)
        inputs: asyncio.Queue = asyncio.Queue()
        inputs.put_nowait(TypedText("hi", 0.0))
        inputs.put_nowait(None)
        await asyncio.wait_for(controller.run(inputs), TIMEOUT_S)
        return drain(events), history, tts, sink, llm

    seen, history, tts, sink, llm = asyncio.run(scenario())
    assert [p for _, p in tts.phrases] == ["Hello there.", "How are you today?"]
    assert sink.written[1] == 6 * SAMPLES_PER_WORD == sink.played[1]
    assert history.pairs == [("hi", "Hello there. How are you today?")]
    assert llm.requests[0][-1] == {"role": "user", "content": "hi"}
    states = [e.state for e in seen if isinstance(e, StateChanged)]
    assert states == [State.THINKING, State.SPEAKING, State.IDLE]
    said = [e for e in seen if isinstance(e, AssistantSaid)]
    assert said == [AssistantSaid(1, "Hello there. How are you today?", False, "Hello there. How are you today?")]
    latency = next(e for e in seen if isinstance(e, TurnLatency))
    assert latency.llm_first_token_ms is not None and latency.llm_first_token_ms >= 0
    assert latency.tts_first_audio_ms is not None and latency.tts_first_audio_ms >= 0


def test_barge_in_flushes_before_the_reply_ends_and_keeps_only_what_was_heard():
    async def scenario():
        llm = ScriptedLLM(["One two three four. Five six seven eight.", "Okay."])
        asr = ScriptedASR(["stop"])
        sink = ManualSink(auto_play=False)
        controller, events, history, tts, _ = make(llm, asr=asr, sink=sink)
        inputs: asyncio.Queue = asyncio.Queue()
        runner = asyncio.create_task(controller.run(inputs))
        inputs.put_nowait(TypedText("count", 0.0))
        seen: list = []
        await wait_for_event(seen, events, lambda e: isinstance(e, StateChanged) and e.state == State.SPEAKING)
        # Let all eight words be generated, then play two words and a half.
        while sink.written.get(1, 0) < 8 * SAMPLES_PER_WORD:
            await asyncio.sleep(0.01)
        sink.play(1, int(2.5 * SAMPLES_PER_WORD))
        inputs.put_nowait(SpeechStarted(5.0))
        await wait_for_event(seen, events, lambda e: isinstance(e, StateChanged) and e.state == State.LISTENING)
        inputs.put_nowait(utterance(6.0))
        sink.auto_play = True
        await wait_for_event(seen, events, lambda e: isinstance(e, AssistantSaid) and e.turn_id == 2)
        inputs.put_nowait(None)
        await asyncio.wait_for(runner, TIMEOUT_S)
        return seen + drain(events), history, sink

    seen, history, sink = asyncio.run(scenario())
    assert sink.log.index("flush") > 0 and sink.flushes >= 1
    first = next(e for e in seen if isinstance(e, AssistantSaid) and e.turn_id == 1)
    assert first.interrupted is True
    assert first.text == "One two"  # 2.5 of the first phrase's 4 words were played
    assert first.full_text.startswith("One two three four.")
    assert history.pairs[0] == ("count", "One two…")
    assert history.pairs[1] == ("stop", "Okay.")
    # Order: speech pauses the reply and listening starts; once "stop" is transcribed (not a
    # backchannel) the reply is cancelled and closed, then turn 2 begins.
    assert sink.log.index("pause") < sink.log.index("flush")
    kinds = [(type(e).__name__, getattr(e, "turn_id", None), getattr(e, "state", None) or getattr(e, "action", None)) for e in seen]
    i_paused = kinds.index(("BargeIn", 1, "paused"))
    i_listen = next(i for i, k in enumerate(kinds) if k[2] == State.LISTENING)
    i_cancelled = kinds.index(("BargeIn", 1, "cancelled"))
    i_said = kinds.index(("AssistantSaid", 1, None))
    i_user2 = kinds.index(("UserSaid", 2, None))
    assert i_paused < i_listen < i_cancelled < i_said < i_user2


def test_half_duplex_ignores_speech_while_replying():
    async def scenario():
        llm = ScriptedLLM(["All of this is spoken."])
        asr = ScriptedASR(["never used"])
        controller, events, history, tts, sink = make(llm, asr=asr, barge_in=False)
        inputs: asyncio.Queue = asyncio.Queue()
        llm.gate = asyncio.Event()
        runner = asyncio.create_task(controller.run(inputs))
        inputs.put_nowait(TypedText("talk", 0.0))
        seen: list = []
        await wait_for_event(seen, events, lambda e: isinstance(e, StateChanged) and e.state == State.THINKING)
        inputs.put_nowait(SpeechStarted(1.0))
        inputs.put_nowait(utterance(2.0))
        await asyncio.sleep(0.05)  # give the controller a chance to (wrongly) react
        llm.gate.set()
        inputs.put_nowait(None)
        await asyncio.wait_for(runner, TIMEOUT_S)
        return seen + drain(events), history, asr, sink

    seen, history, asr, sink = asyncio.run(scenario())
    assert asr.calls == 0
    assert sink.flushes == 0
    assert history.pairs == [("talk", "All of this is spoken.")]


def test_llm_error_is_one_notice_and_the_next_turn_works():
    async def scenario():
        llm = ScriptedLLM([LLMError("LLM endpoint http://127.0.0.1:9 is unreachable", "start it"), "Back again."])
        controller, events, history, tts, sink = make(llm)
        inputs: asyncio.Queue = asyncio.Queue()
        runner = asyncio.create_task(controller.run(inputs))
        seen: list = []
        inputs.put_nowait(TypedText("first", 0.0))
        await wait_for_event(seen, events, lambda e: isinstance(e, AssistantSaid))
        inputs.put_nowait(TypedText("second", 0.0))
        inputs.put_nowait(None)
        await asyncio.wait_for(runner, TIMEOUT_S)
        return seen + drain(events), history

    seen, history = asyncio.run(scenario())
    errors = [e.text for e in seen if isinstance(e, Notice) and e.level == "error"]
    assert errors == ["LLM endpoint http://127.0.0.1:9 is unreachable. start it"]
    assert history.pairs == [("second", "Back again.")]  # the failed turn left no exchange
    assert controller_states_end_idle(seen)


def controller_states_end_idle(seen: list) -> bool:
    return [e.state for e in seen if isinstance(e, StateChanged)][-1] == State.IDLE


def test_pieces_of_long_speech_make_one_turn_and_voice_switch_applies():
    async def scenario():
        llm = ScriptedLLM(["Sure."])
        asr = ScriptedASR(["tell me a long", "story please"])
        controller, events, history, tts, sink = make(llm, asr=asr)
        inputs: asyncio.Queue = asyncio.Queue()
        inputs.put_nowait(SetVoice("ryan"))
        inputs.put_nowait(SpeechStarted(0.5))
        inputs.put_nowait(utterance(25.0, final=False))
        inputs.put_nowait(utterance(30.0, final=True))
        inputs.put_nowait(None)
        await asyncio.wait_for(controller.run(inputs), TIMEOUT_S)
        return drain(events), history, tts

    seen, history, tts = asyncio.run(scenario())
    users = [e for e in seen if isinstance(e, UserSaid)]
    assert users == [UserSaid(1, "tell me a long story please")]
    assert tts.phrases == [("ryan", "Sure.")]
    latency = next(e for e in seen if isinstance(e, TurnLatency))
    assert latency.asr_ms is not None
    assert latency.extra["endpoint_ms"] == pytest.approx(400.0)


class BrokenASR:
    """Raises what a model may raise (out of memory, a shape error) once, then hears text."""

    def __init__(self, texts: list[str | Exception]) -> None:
        self.texts = list(texts)

    def transcribe(self, samples_16k: np.ndarray) -> str:
        item = self.texts.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


class FailingMidStreamLLM:
    """Streams some text, then fails with an exception that is not a SisyphusError."""

    def __init__(self) -> None:
        self.calls = 0

    async def stream(self, messages):
        self.calls += 1
        if self.calls == 1:
            yield "Heard this. "
            raise TypeError("can only concatenate str (not 'int') to str")
        yield "Second reply."


def test_an_unexpected_exception_in_a_reply_costs_that_turn_only():
    async def scenario():
        controller, events, history, tts, sink = make(FailingMidStreamLLM())
        inputs: asyncio.Queue = asyncio.Queue()
        for text in ("first", "second"):
            inputs.put_nowait(TypedText(text, 0.0))
        inputs.put_nowait(None)
        await asyncio.wait_for(controller.run(inputs), TIMEOUT_S)  # returns: nothing re-raised
        return drain(events), history

    seen, history = asyncio.run(scenario())
    errors = [e.text for e in seen if isinstance(e, Notice) and e.level == "error"]
    assert len(errors) == 1 and errors[0].startswith("the reply failed: TypeError: can only concatenate")
    said = [e for e in seen if isinstance(e, AssistantSaid)]
    assert [(e.turn_id, e.text, e.interrupted) for e in said] == [
        (1, "Heard this.", False), (2, "Second reply.", False)
    ]
    assert history.pairs == [("first", "Heard this."), ("second", "Second reply.")]
    assert controller_states_end_idle(seen)


def test_an_asr_failure_costs_that_utterance_only_and_chinese_pieces_join_without_spaces():
    async def scenario():
        asr = BrokenASR([RuntimeError("CUDA out of memory"), "今天天气", "怎么样"])
        controller, events, history, tts, sink = make(ScriptedLLM(["很好。"]), asr=asr)
        inputs: asyncio.Queue = asyncio.Queue()
        inputs.put_nowait(utterance(5.0))
        inputs.put_nowait(utterance(25.0, final=False))
        inputs.put_nowait(utterance(30.0))
        inputs.put_nowait(None)
        await asyncio.wait_for(controller.run(inputs), TIMEOUT_S)
        return drain(events)

    seen = asyncio.run(scenario())
    errors = [e.text for e in seen if isinstance(e, Notice) and e.level == "error"]
    assert errors == [
        "the transcription failed: RuntimeError: CUDA out of memory (sisyphus --debug talk shows the traceback)"
    ]
    assert [e for e in seen if isinstance(e, UserSaid)] == [UserSaid(1, "今天天气怎么样")]
    assert [e.text for e in seen if isinstance(e, AssistantSaid)] == ["很好。"]
