"""Open speakers in a virtual room: echo cancellation, barge-in over a reply, backchannels.

The room (sisyphus.bench.room) is a private PulseAudio whose speaker leaks into the
microphone through a 60 ms loopback at the level it was played, as a laptop's own
speakers would. A session runs in this process with the real PortAudio streams, speaker
sink, echo canceller, Silero VAD and turn controller (see room_harness for the doubles:
scripted LLM, espeak-ng TTS, an ASR that knows what the test is saying).
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from sisyphus.agent.controller import TypedText
from sisyphus.bench.room import room_available, virtual_room
from sisyphus.frames import AssistantSaid, BargeIn, EchoStatus, State, StateChanged, UserSaid
from tests.e2e.harness import of_type, transcript
from tests.e2e.room_harness import active_dbfs, room_session, spoken_seconds
from tests.support.speech import espeak, have_espeak

pytestmark = [
    pytest.mark.slow,
    pytest.mark.audio,
    pytest.mark.skipif(not (room_available() and have_espeak()), reason="needs pulseaudio, pactl, paplay, espeak-ng"),
]

# About 5.5 s each at espeak-ng's 160 words a minute.
REPLIES = [
    f"Reply number {n}. The weather today is mild, with a light breeze from the west and a few clouds later on."
    for n in range(1, 11)
]
LONG = (
    "Here is a long answer that keeps going for a while, so that there is plenty of time to talk over it "
    "before it ends, and then it goes on a little longer still, just to be sure."
)
CALIBRATE = "This short reply lets the test hear how loud the echo is."
INTERRUPTION = "Wait, stop, one more question."  # about 1.8 s: longer than any backchannel


@pytest.fixture(scope="module")
def room():
    with virtual_room(delay_ms=60, echo_gain=1.0) as room:
        yield room


async def _reply_heard_whole(session, turn_id: int, timeout_s: float = 60) -> AssistantSaid:
    return await session.events.wait_for(lambda e: isinstance(e, AssistantSaid) and e.turn_id == turn_id, timeout_s)


def _echo_reports(session) -> list[EchoStatus]:
    return [e for e in session.events.of(EchoStatus) if e.seconds > 0]


async def _calibrate(session) -> float:
    """Play one short reply; the echo's level at the microphone, in dBFS, as the canceller measured it."""
    session.inputs.put_nowait(TypedText("calibrate", time.monotonic()))
    await _reply_heard_whole(session, 1)
    status = await session.events.wait_for(lambda e: isinstance(e, EchoStatus) and e.seconds > 0, 10)
    assert status.echo_dbfs is not None and -30 < status.echo_dbfs < -10, status
    return status.echo_dbfs


def test_ten_replies_on_open_speakers_never_interrupt_themselves_with_echo_cancellation(room, tmp_path):
    assert min(spoken_seconds(text) for text in REPLIES) >= 5.0

    async def scenario():
        session = room_session(tmp_path, REPLIES)
        await session.start()
        for turn_id, _ in enumerate(REPLIES, start=1):
            session.inputs.put_nowait(TypedText(f"question {turn_id}", time.monotonic()))
            await _reply_heard_whole(session, turn_id)
            # Each reply's echo report follows half a second of silence after it.
            await session.events.wait_for(lambda _, n=turn_id: len(_echo_reports(session)) >= n, 10)
        await session.stop()
        return session

    session = asyncio.run(scenario())
    said = session.events.of(AssistantSaid)
    assert [(e.text, e.interrupted) for e in said] == [(text, False) for text in REPLIES]
    assert session.events.of(BargeIn) == []  # no pause, no cancel: the reply never heard itself
    assert State.LISTENING not in [e.state for e in session.events.of(StateChanged)]
    assert session.asr.calls == []
    reports = _echo_reports(session)
    assert len(reports) == len(REPLIES)
    assert all(r.echo_reduction_db is not None and r.echo_reduction_db >= 25 for r in reports), reports
    assert all(r.seconds >= 4.0 for r in reports)  # each report covers a reply's playback
    echo = [r for r in of_type(transcript(tmp_path), "echo") if r["seconds"] > 0]
    assert [round(r["echo_reduction_db"], 3) for r in echo] == [round(r.echo_reduction_db, 3) for r in reports]


def test_without_echo_cancellation_the_same_room_interrupts_itself(room, tmp_path):
    async def scenario():
        session = room_session(tmp_path, [LONG], echo_cancellation="off")
        await session.start()
        session.inputs.put_nowait(TypedText("talk to me", time.monotonic()))
        paused = await session.events.wait_for(lambda e: isinstance(e, BargeIn), spoken_seconds(LONG) + 10)
        await session.stop()
        return session, paused

    session, paused = asyncio.run(scenario())
    assert (paused.turn_id, paused.action) == (1, "paused")  # its own echo started a barge-in
    assert session.events.of(EchoStatus)[0].state == "off"


def test_the_user_talking_over_a_reply_at_minus_6_db_pauses_it_and_takes_the_turn(room, tmp_path):
    trials = 10
    user = espeak(INTERRUPTION)

    async def scenario():
        session = room_session(tmp_path, [CALIBRATE] + [LONG] * (trials + 1))
        await session.start()
        echo_dbfs = await _calibrate(session)
        gain = 10 ** ((echo_dbfs - 6.0 - active_dbfs(user, 16_000)) / 20)
        session.inputs.put_nowait(TypedText("talk for a while", time.monotonic()))
        started: list[float] = []
        for trial in range(trials):
            turn_id = trial + 2
            await session.events.wait_for(
                lambda e, t=turn_id: isinstance(e, StateChanged) and e.state == State.SPEAKING and e.turn_id == t, 30
            )
            await asyncio.sleep(1.0)  # the reply is well under way
            session.asr.saying = INTERRUPTION
            started.append(time.monotonic())
            player = room.play_user(user, gain=gain)
            try:
                await session.events.wait_for(lambda e, t=turn_id: isinstance(e, UserSaid) and e.turn_id == t + 1, 30)
            except AssertionError:
                pass  # a missed barge-in: the reply ran on; counted below
            await asyncio.to_thread(player.wait, 30)
        await session.stop()
        return session, started, gain

    session, started, gain = asyncio.run(scenario())
    barge_ins = session.events.of(BargeIn)
    cancelled = [e for e in barge_ins if e.action == "cancelled"]
    assert len(cancelled) >= 9, barge_ins
    assert all(e.text == INTERRUPTION for e in cancelled)
    # Never taken for a backchannel; a pause on voiced frames that never became speech
    # (the user's first syllable pushed down by AEC3's double-talk suppression) may resume.
    assert not [e for e in barge_ins if e.action == "resumed" and e.text]
    users = [e.text for e in session.events.of(UserSaid)]
    assert users.count(INTERRUPTION) == len(cancelled)
    # The history holds only what was heard of each interrupted reply.
    heard = [e for e in session.events.of(AssistantSaid) if e.interrupted]
    assert len(heard) == len(cancelled)
    assert all(LONG.startswith(e.text) and len(e.text) < len(LONG) for e in heard)
    pause_ms = np.array([e.pause_ms for e in cancelled])
    decide_ms = pause_ms - np.array([e.vad_ms for e in cancelled])
    print(f"\nuser gain {gain:.2f}; speech start → speaker quiet: {np.round(pause_ms)} ms; "
          f"VAD decision → quiet: {np.round(decide_ms)} ms")
    assert np.count_nonzero(decide_ms <= 100) >= 9, decide_ms


def test_a_backchannel_during_a_reply_resumes_it_and_the_history_holds_all_of_it(room, tmp_path):
    yeah = espeak("Yeah, okay.")

    async def scenario():
        session = room_session(tmp_path, [CALIBRATE, LONG])
        await session.start()
        echo_dbfs = await _calibrate(session)
        gain = 10 ** ((echo_dbfs - 6.0 - active_dbfs(yeah, 16_000)) / 20)
        session.inputs.put_nowait(TypedText("tell me something long", time.monotonic()))
        await session.events.wait_for(lambda e: isinstance(e, StateChanged) and e.state == State.SPEAKING and e.turn_id == 2, 30)
        await asyncio.sleep(1.5)
        session.asr.saying = "Yeah, okay."
        room.play_user(yeah, gain=gain)
        said = await _reply_heard_whole(session, 2, spoken_seconds(LONG) + 15)
        messages = session.history.messages("next")
        await session.stop()
        return session, said, messages

    session, said, messages = asyncio.run(scenario())
    actions = [(e.action, e.text) for e in session.events.of(BargeIn)]
    assert actions[-2:] == [("paused", ""), ("resumed", "Yeah, okay.")]
    # AEC3's double-talk suppression can push "okay" down so that "Yeah" alone stops short
    # of speech: one false start (paused, resumed without words) may come first. The issue
    # asks that the reply resumes whole; it never asks for a single pause.
    assert actions[:-2] in ([], [("paused", ""), ("resumed", "")]), actions
    assert (said.text, said.interrupted) == (LONG, False)
    assert messages[-2] == {"role": "assistant", "content": LONG}  # all of it, nothing marked cut
    assert [e.text for e in session.events.of(UserSaid)] == ["calibrate", "tell me something long"]
    records = transcript(tmp_path)
    assert [r["action"] for r in of_type(records, "barge_in")] == [action for action, _ in actions]
    assert of_type(records, "assistant")[-1]["text"] == LONG
