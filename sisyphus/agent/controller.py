"""The turn controller: one conversation, one reply task at a time, barge-in.

It consumes input events (VAD's SpeechStarted/Utterance, typed text, commands) from one
queue and owns the state machine idle → listening → transcribing → thinking → speaking.
A reply is a single task (LLM stream → phrase chunker → TTS → speaker). Speech during a
reply pauses the speaker and keeps the reply; when the speech ends it either resumes (a
backchannel, see agent/bargein.py) or is cancelled: the task is cancelled, the speaker
flushed, and the history keeps only what was heard.
Model work runs on one worker thread per model, never on the event loop.
A reply may also be prepared at a pause inside a turn (TurnPaused): it runs held back,
and is adopted when the turn ends there or dropped unheard (`sisyphus.agent.preempt`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from sisyphus.agent.bargein import BargeInPolicy, ReplyPause
from sisyphus.agent.heard import INTERRUPTED_MARK, ReplyAudio
from sisyphus.agent.preempt import PreparedReplies
from sisyphus.errors import SisyphusError
from sisyphus.llm.chunker import join_phrases
from sisyphus.llm.stream import cut_short_notice
from sisyphus.frames import (
    AssistantSaid,
    Notice,
    PreemptiveReply,
    SpeechDismissed,
    SpeechOnset,
    SpeechResumed,
    SpeechStarted,
    State,
    StateChanged,
    TurnEnded,
    TurnLatency,
    TurnPaused,
    Utterance,
    UserSaid,
)
from sisyphus.tts.audible import AudibleTimer
from sisyphus.tts.engine import SpeechSynthesizer
from sisyphus.ui.events import VoiceChanged

log = logging.getLogger(__name__)

CANCEL_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class TypedText:
    """A line the user typed (`talk --text`): a turn without ASR."""

    text: str
    t_s: float


@dataclass(frozen=True)
class SetVoice:
    """Switch the reply voice from the next phrase on (typed `/voice NAME`)."""

    name: str


class Recognizer(Protocol):
    def transcribe(self, samples_16k: np.ndarray) -> str: ...


class ChatStreamer(Protocol):
    # The iterator may carry `finish_reason` once exhausted (llm.stream.ReplyStream does).
    def stream(self, messages: list[dict[str, str]]) -> AsyncIterator[str]: ...


class Chunker(Protocol):
    def push(self, delta: str) -> list[str]: ...
    def flush(self) -> list[str]: ...


class ConversationHistory(Protocol):
    def messages(self, user_text: str) -> list[dict[str, str]]: ...
    def add(self, user_text: str, assistant_text: str) -> None: ...


class Sink(Protocol):
    sample_rate_hz: int

    def write(self, turn_id: int, samples: np.ndarray) -> None: ...
    def flush(self) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def last_sound_end_s(self, turn_id: int) -> float | None: ...
    def played_samples(self, turn_id: int) -> int: ...
    async def drained(self, turn_id: int) -> None: ...
    def first_sound_s(self, turn_id: int) -> float | None: ...


@dataclass
class Turn:
    id: int
    user_text: str
    speech_end_s: float
    audio: ReplyAudio = field(default_factory=ReplyAudio)
    llm_text: list[str] = field(default_factory=list)
    latency: dict[str, float] = field(default_factory=dict)
    first_audio_s: float | None = None
    tts_rtfs: list[float] = field(default_factory=list)
    audible: AudibleTimer | None = None  # from the first phrase to the first sample a listener hears
    gate: asyncio.Event | None = None  # a prepared reply: its audio waits until the turn is confirmed
    finish_reason: str | None = None  # as the LLM stream ended it ("stop", "length", ...)


class TurnController:
    """Runs turns from input events; see the module docstring."""

    def __init__(
        self,
        *,
        asr: Recognizer | None,
        llm: ChatStreamer,
        tts: SpeechSynthesizer,
        sink: Sink,
        history: ConversationHistory,
        make_chunker: Callable[[], Chunker],
        events: asyncio.Queue,
        voice: str,
        language: str | None = None,
        barge_in: bool = True,
        clock: Callable[[], float] = time.monotonic,
        backchannel: BargeInPolicy | None = None,
    ) -> None:
        self._asr = asr
        self._llm = llm
        self._tts = tts
        self._sink = sink
        self._history = history
        self._make_chunker = make_chunker
        self._events = events
        self.voice = voice
        self._language = language
        self.barge_in = barge_in
        self._clock = clock
        self._pause = ReplyPause(sink, self._emit, backchannel or BargeInPolicy())
        self._asr_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sisyphus-asr")
        self._tts_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sisyphus-tts")
        self._turn_ids = 0
        self._reply: asyncio.Task | None = None
        self._turn: Turn | None = None
        self._pieces: list[str] = []
        self.state = State.IDLE
        self.turns_done = 0
        self._prepared = PreparedReplies(transcribe=self._transcribe, start_held=self._start_held, emit=self._emit,
                                         clock=clock)

    @property
    def replying(self) -> bool:
        """True while a reply is being thought of or spoken."""
        return self._reply is not None and not self._reply.done()

    async def run(self, inputs: asyncio.Queue) -> None:
        """Handle input events until a None arrives, then let the last reply finish."""
        try:
            while (item := await inputs.get()) is not None:
                await self._handle(item)
            if self._pause.held is not None:  # input ended mid-pause: let the reply finish
                self._pause.forget()
                self._sink.resume()
            if self._reply is not None:
                await asyncio.wait([self._reply])
                if not self._reply.cancelled():
                    self._reply.result()  # a bug in the last reply surfaces here
        finally:
            await self._prepared.drop("session ended")
            await self.interrupt(reason="session ended")
            self._asr_pool.shutdown(wait=False, cancel_futures=True)
            self._tts_pool.shutdown(wait=False, cancel_futures=True)

    async def _handle(self, item: Any) -> None:
        if isinstance(item, SpeechStarted):
            if self.replying:
                if not self.barge_in:
                    return
                if self._turn is not None:
                    self._pause.hold(self._turn.id, item.t_s, confirmed=True, started_s=item.detected_s)
            self._set_state(State.LISTENING)
        elif isinstance(item, SpeechOnset):
            if self.replying and self.barge_in and self._turn is not None:
                self._pause.hold(self._turn.id, item.t_s)
        elif isinstance(item, SpeechDismissed):
            if (released := self._pause.release_false_start()) is not None:
                self._show_resumed(released.turn_id)
        elif isinstance(item, Utterance):
            if self.replying and not self.barge_in:
                return
            await self._on_utterance(item)
        elif isinstance(item, TurnPaused):
            if self._asr is not None and (self.barge_in or not self.replying):
                await self._prepared.start(item, self._pieces)
        elif isinstance(item, SpeechResumed):
            await self._prepared.drop("the user went on")
        elif isinstance(item, TypedText):
            # Typed lines queue up like chat messages: each waits for the reply before it.
            if self._pause.held is not None:  # typing over a paused reply takes the turn
                await self.interrupt(reason="typed over a paused reply")
            if self._reply is not None:
                await asyncio.wait([self._reply])  # never raises the reply's outcome
            # Latency counts from when the turn starts, not from when a queued line was typed.
            self._start_reply(item.text, max(item.t_s, self._clock()), {})
        elif isinstance(item, SetVoice):
            previous, self.voice = self.voice, item.name
            self._emit(VoiceChanged(item.name))
            self._notice(f"voice switched to {item.name} (was {previous}); the next reply uses it")
        else:
            log.warning("ignored input event %r", item)

    async def _on_utterance(self, utt: Utterance) -> None:
        paused = self._pause.held
        if paused is None:
            await self.interrupt(reason="barge-in")
            if await self._adopted(utt):
                return
        self._set_state(State.TRANSCRIBING)
        if self._asr is None:
            if paused is not None:
                self._pause.forget()
                self._sink.resume()
            self._notice("speech heard, but no ASR engine is loaded", "warning")
            self._set_state(State.IDLE)
            return
        started = self._clock()
        loop = asyncio.get_running_loop()
        try:
            text = await loop.run_in_executor(self._asr_pool, self._asr.transcribe, utt.samples)
        except Exception as exc:  # a model failure (or a bug) costs this utterance, not the session
            if not isinstance(exc, SisyphusError):
                log.debug("transcription failed", exc_info=True)
            self._notice(_failure_line("transcription", exc), "error")
            self._pieces = []
            if paused is not None and await self._settle(utt, ""):
                await self._prepared.drop("a paused reply resumed")
            else:
                self._set_state(State.IDLE)
            return
        asr_ms = (self._clock() - started) * 1000
        text = text.strip()
        if paused is not None:
            if await self._settle(utt, text):
                await self._prepared.drop("a backchannel")
                return  # the reply plays on and the speech is no turn
            if await self._adopted(utt):
                return
        if text:
            self._pieces.append(text)
        if not utt.final:
            return  # a piece of long speech: wait for the rest
        user_text, self._pieces = join_phrases(self._pieces), []
        if not user_text:
            self._set_state(State.IDLE)
            return
        timing = {"endpoint_ms": (utt.detected_s - utt.end_s) * 1000, "asr_ms": asr_ms}
        self._start_reply(user_text, utt.end_s, timing)
        if utt.decision is not None:
            self._emit(TurnEnded(self._turn_ids, utt.decision))

    async def _adopted(self, utt: Utterance) -> bool:
        """Play the reply prepared for this turn if there is one; drop any other preparation."""
        if utt.final and self._prepared.pending and await self._adopt_prepared(utt):
            return True
        await self._prepared.drop("the turn went on")
        return False

    async def _adopt_prepared(self, utt: Utterance) -> bool:
        """A hit: the turn ended on the words a reply was prepared for, and that reply plays now."""
        prep = await self._prepared.adopt()
        if prep is None:
            return False
        turn = prep.turn
        self._turn_ids += 1
        turn.id, turn.speech_end_s, self._pieces = self._turn_ids, utt.end_s, []
        head_start_ms = (self._clock() - prep.started_s) * 1000
        turn.latency.update(endpoint_ms=(utt.detected_s - utt.end_s) * 1000, head_start_ms=head_start_ms)
        self._turn, self._reply = turn, prep.task
        self._emit(UserSaid(turn.id, turn.user_text))
        if utt.decision is not None:
            self._emit(TurnEnded(turn.id, utt.decision))
        self._emit(PreemptiveReply(hit=True, text=turn.user_text, turn_id=turn.id, head_start_ms=head_start_ms))
        self._set_state(State.THINKING)  # SPEAKING follows from its first chunk, as in any reply
        turn.gate.set()
        return True

    async def _transcribe(self, samples: np.ndarray) -> str:
        return await asyncio.get_running_loop().run_in_executor(self._asr_pool, self._asr.transcribe, samples)

    def _start_held(self, user_text: str, speech_end_s: float, timing: dict[str, float]) -> tuple[Turn, Any]:
        """A turn (numbered when adopted) whose reply runs now but plays only once its gate opens."""
        turn = Turn(0, user_text, speech_end_s, latency=dict(timing), gate=asyncio.Event())
        return turn, self._run_reply(turn)

    def _start_reply(self, user_text: str, speech_end_s: float, timing: dict[str, float]) -> None:
        self._turn_ids += 1
        turn = Turn(self._turn_ids, user_text, speech_end_s, latency=dict(timing))
        self._turn = turn
        self._emit(UserSaid(turn.id, user_text))
        self._set_state(State.THINKING)
        self._reply = asyncio.create_task(self._run_reply(turn), name=f"reply-{turn.id}")

    async def _settle(self, utt: Utterance, text: str) -> bool:
        """The speech over a paused reply ended: resume it after a backchannel (True), else cancel it."""
        turn_id = self._pause.held.turn_id if self._pause.held else -1
        if self._pause.decide(utt, text):
            self._show_resumed(turn_id)
            return True
        await self.interrupt(reason="barge-in")
        self._sink.resume()  # a reply that ended while paused (nothing to flush) left it paused
        return False

    def _show_resumed(self, turn_id: int) -> None:
        turn = self._turn if self._turn is not None and self._turn.id == turn_id else None
        if turn is None:
            self._set_state(State.IDLE)  # the reply had ended meanwhile
        else:
            self._set_state(State.SPEAKING if turn.first_audio_s is not None else State.THINKING)

    async def interrupt(self, reason: str) -> None:
        """Cancel the reply in flight (if any) and record what was heard of it."""
        self._pause.forget()
        task, turn = self._reply, self._turn
        if task is None or turn is None or task.done():
            return
        self._sink.flush()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), CANCEL_TIMEOUT_S)
        log.debug("turn %d interrupted (%s)", turn.id, reason)
        if not turn.llm_text:  # else "(interrupted)" alone would hide that no answer had come
            self._notice(f"the reply to turn {turn.id} was cut off ({reason}) before the LLM answered", "warning")
        self._finish(turn, interrupted=True)

    async def _run_reply(self, turn: Turn) -> None:
        phrases: asyncio.Queue[str | None] = asyncio.Queue()
        thinker = asyncio.create_task(self._think(turn, phrases), name=f"llm-{turn.id}")
        try:
            await self._speak(turn, phrases)
            await thinker
            await self._sink.drained(turn.id)
        except SisyphusError as exc:
            self._notice(exc.one_line(), "error")
            await self._sink.drained(turn.id)
        except Exception as exc:  # a bug must cost one turn, not the session
            log.debug("turn %d failed", turn.id, exc_info=True)
            self._notice(_failure_line("reply", exc), "error")
            await self._sink.drained(turn.id)
        else:
            if turn.llm_text and not turn.audio.total_samples:
                self._notice("nothing of the reply could be spoken (was it only code, markup or emoji?)", "warning")
        finally:
            if not thinker.done():
                thinker.cancel()
                with contextlib.suppress(asyncio.CancelledError, SisyphusError):
                    await thinker
        if self._turn is turn:
            self._finish(turn, interrupted=False)

    async def _think(self, turn: Turn, phrases: asyncio.Queue) -> None:
        """Stream the LLM's reply and hand each complete phrase to TTS."""
        chunker = self._make_chunker()
        started = self._clock()
        try:
            # aclosing: an abandoned reply closes its HTTP stream now, not at GC time.
            async with contextlib.aclosing(self._llm.stream(self._history.messages(turn.user_text))) as deltas:
                async for delta in deltas:
                    if not turn.llm_text:
                        turn.latency["llm_first_token_ms"] = (self._clock() - started) * 1000
                    turn.llm_text.append(delta)
                    for phrase in chunker.push(delta):
                        await phrases.put(phrase)
                turn.finish_reason = getattr(deltas, "finish_reason", None)
            cut = cut_short_notice(turn.finish_reason)
            if cut is not None:
                self._notice(cut, "warning")
            for phrase in chunker.flush():
                await phrases.put(phrase)
        finally:
            phrases.put_nowait(None)

    async def _speak(self, turn: Turn, phrases: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        while (phrase := await phrases.get()) is not None:
            cancel = threading.Event()
            phrase_started = self._clock()
            chunks = self._tts.stream(phrase, self.voice, language=self._language, cancel=cancel)
            spoken = turn.audio.begin_phrase(phrase)
            try:
                while (chunk := await loop.run_in_executor(self._tts_pool, _next_chunk, chunks)) is not None:
                    arrived_s = self._clock()
                    if turn.first_audio_s is None:
                        turn.first_audio_s = arrived_s
                        turn.latency["tts_first_audio_ms"] = (turn.first_audio_s - phrase_started) * 1000
                        if turn.gate is not None:
                            await turn.gate.wait()
                        self._set_state(State.SPEAKING)
                        turn.audible = AudibleTimer(self._tts.sample_rate_hz, phrase_started)
                    if turn.audible is not None and turn.audible.audible_s is None:
                        if turn.audible.add(chunk, arrived_s) is not None:
                            turn.latency["tts_audible_ms"] = turn.audible.audible_ms
                    turn.audio.add_samples(spoken, len(chunk))
                    self._sink.write(turn.id, chunk)
            finally:
                cancel.set()
                # Closed on the TTS thread, after any generation step still running there.
                self._tts_pool.submit(_close, chunks)
            stats = getattr(self._tts, "last_stats", None)
            if stats is not None and stats.audio_s > 0:
                turn.tts_rtfs.append(stats.real_time_factor)
            if getattr(stats, "hit_limit", False):
                turn.audio.cut_by_guard(spoken, self._sink.sample_rate_hz)

    def _finish(self, turn: Turn, interrupted: bool) -> None:
        if self._turn is not turn:
            return
        self._turn = None
        # A reply that ran to its end was heard whole (its last block may still be in the
        # device's buffer); after a barge-in only what the speaker already played counts.
        played = self._sink.played_samples(turn.id) if interrupted else turn.audio.total_samples
        heard = turn.audio.heard_text(played)
        if heard or interrupted:  # a reply that failed before a sound leaves no exchange
            self._history.add(turn.user_text, heard + (INTERRUPTED_MARK if interrupted else ""))
        self._emit(
            AssistantSaid(
                turn.id, heard, interrupted, full_text="".join(turn.llm_text), finish_reason=turn.finish_reason
            )
        )
        first_sound = self._sink.first_sound_s(turn.id)
        latency = dict(turn.latency)
        if first_sound is not None:
            latency["voice_to_voice_ms"] = (first_sound - turn.speech_end_s) * 1000
        self._emit(
            TurnLatency(
                turn.id,
                asr_ms=latency.pop("asr_ms", None),
                llm_first_token_ms=latency.pop("llm_first_token_ms", None),
                tts_first_audio_ms=latency.pop("tts_first_audio_ms", None),
                voice_to_voice_ms=latency.pop("voice_to_voice_ms", None),
                tts_rtf=statistics.median(turn.tts_rtfs) if turn.tts_rtfs else None,
                tts_audible_ms=latency.pop("tts_audible_ms", None),
                extra=latency,
            )
        )
        self.turns_done += 1
        self._set_state(State.IDLE)

    def _set_state(self, state: State) -> None:
        if state != self.state:
            self.state = state
            self._emit(StateChanged(state, self._turn.id if self._turn else self._turn_ids))

    def _notice(self, text: str, level: str = "info") -> None:
        self._emit(Notice(text, level))

    def _emit(self, event: object) -> None:
        self._events.put_nowait(event)


def _failure_line(what: str, exc: Exception) -> str:
    if isinstance(exc, SisyphusError):
        return exc.one_line()
    return f"the {what} failed: {type(exc).__name__}: {exc} (sisyphus --debug talk shows the traceback)"


def _next_chunk(chunks: Iterator[np.ndarray]) -> np.ndarray | None:
    """One step of a TTS stream, run on the TTS thread; empty chunks are skipped."""
    for chunk in chunks:
        if len(chunk):
            return chunk
    return None


def _close(chunks: Iterator[np.ndarray]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()
