"""Streaming endpointing: turns microphone blocks into SpeechStarted and Utterance events.

Silero VAD scores each 512-sample frame (32 ms at 16 kHz). A turn starts once a stretch
of speech holds `min_speech_ms` of voiced frames (so clicks and coughs are not turns).
Without a turn model it ends after `min_silence_ms` without speech. With one (Smart Turn,
`sisyphus.vad.turn`), the model is asked after `complete_silence_ms`: the turn ends there
when it says the speech is a finished turn, else after `incomplete_silence_ms` (unless
speech resumes first). Every final Utterance carries that TurnDecision.

Preemptive replies: after `preempt_silence_ms` of silence inside a turn, a TurnPaused
carries what was said so far, so a reply can be prepared before the turn is confirmed;
speech after it gives SpeechResumed (the preparation is stale). An Utterance that ends
the turn with no SpeechResumed after a TurnPaused holds the same speech, only more
trailing silence.

The utterance handed to ASR starts
`pre_roll_ms` before the first voiced frame, because Silero reacts a frame or two late and
first syllables are quiet, and keeps a short tail after the last voiced frame for the
same reason at the end. Speech longer than `max_utterance_s` (the ASR window) is cut at
the quietest frame near the limit into pieces with `final=False`; the last piece is final.

Times: `SpeechStarted.t_s` and `Utterance.start_s` are when speech began (the first voiced
frame, pre-roll not counted); `Utterance.end_s` is where the last voiced frame ends;
`detected_s` is the end of the frame on which the decision was made. The samples run from
`start_s - pre_roll` (less when the stream had not run that long) to `end_s + tail`.
A piece cut from long speech starts exactly where the previous one ended, without pre-roll,
so the pieces of a turn concatenate to the continuous audio.

With `onset_events=True` the endpointer also says earlier that someone may be starting to
speak: `SpeechOnset` once a candidate holds `pause_after_ms` of voiced frames, and
`SpeechDismissed` if that candidate then fades without reaching `min_speech_ms`. The agent
pauses a reply on the first and resumes it on the second: a pause is cheap to undo.

This module does no I/O and is not thread-safe: the agent calls one Endpointer from one
worker thread, and the turn model runs on that thread too (a few frames of delay that the
queue absorbs). It does not decide about barge-in; the agent does, on SpeechStarted.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from sisyphus.config import VadConfig
from sisyphus.errors import ModelError
from sisyphus.frames import (
    MIC_RATE_HZ,
    SpeechDismissed,
    SpeechOnset,
    SpeechResumed,
    SpeechStarted,
    TurnDecision,
    TurnPaused,
    Utterance,
    mono_samples,
)
from sisyphus.vad.features import WINDOW_SAMPLES
from sisyphus.vad.turn import TurnModel, load_turn_model

log = logging.getLogger(__name__)

FRAME_SAMPLES = 512
FRAME_S = FRAME_SAMPLES / MIC_RATE_HZ
# Silero's own hysteresis: once speaking, a frame is silence only below threshold - 0.15.
HYSTERESIS = 0.15
# Audio kept after the last voiced frame (capped by the shortest end silence): word-final consonants.
TAIL_MS = 192
# A long utterance is cut at the quietest frame within this much before the limit.
SPLIT_SEARCH_S = 2.0

# Frames the turn model hears (its 8 s window).
TURN_WINDOW_FRAMES = math.ceil(WINDOW_SAMPLES / FRAME_SAMPLES)

Event = SpeechStarted | Utterance | TurnPaused | SpeechResumed | SpeechOnset | SpeechDismissed

if TYPE_CHECKING:
    import torch


class _State(enum.Enum):
    IDLE = "idle"
    CANDIDATE = "candidate"  # voiced frames seen, not yet min_speech_ms of them
    SPEECH = "speech"


def load_silero_model() -> torch.nn.Module:
    """Silero VAD (TorchScript) from the silero-vad wheel; nothing is downloaded.

    Importing `silero_vad` calls `torch.set_num_threads(1)` for the whole process, which
    would slow ASR and TTS; the previous thread count is restored right after.
    """
    import torch

    threads = torch.get_num_threads()
    try:
        from silero_vad import load_silero_vad
    finally:
        torch.set_num_threads(threads)
    with warnings.catch_warnings():
        # The wheel's loader uses APIs its dependencies deprecate (importlib path, jit.load).
        warnings.simplefilter("ignore", DeprecationWarning)
        return load_silero_vad()


class Endpointer:
    """Streaming endpointing over Silero VAD. Pure, synchronous; the agent calls it on a worker thread."""

    def __init__(
        self,
        config: VadConfig,
        *,
        model: Callable[..., torch.Tensor] | None = None,
        turn_model: TurnModel | None = None,
        onset_events: bool = False,
    ) -> None:
        """`turn_model` None loads what `config.turn_model` names (none for "none")."""
        self._config = config
        self._onset_events = onset_events
        self._onset_frames = max(1, math.ceil(config.pause_after_ms / 1000 / FRAME_S))
        self._model = model if model is not None else load_silero_model()
        self._turn_model = turn_model if turn_model is not None else load_turn_model(config.turn_model)
        self._threshold = config.threshold
        self._neg_threshold = max(config.threshold - HYSTERESIS, 0.01)
        self._min_speech_frames = max(1, math.ceil(config.min_speech_ms / 1000 / FRAME_S))
        self._min_silence_frames = _frames(config.min_silence_ms)
        self._complete_frames = _frames(config.complete_silence_ms)
        self._incomplete_frames = max(_frames(config.incomplete_silence_ms), self._complete_frames)
        self._preempt_frames = _frames(config.preempt_silence_ms) if config.preempt_silence_ms else None
        self._pre_roll_frames = math.ceil(config.pre_roll_ms / 1000 / FRAME_S)
        shortest_end = self._complete_frames if self._turn_model is not None else self._min_silence_frames
        self._tail_frames = min(math.ceil(TAIL_MS / 1000 / FRAME_S), shortest_end)
        self._max_frames = max(2, int(config.max_utterance_s / FRAME_S))
        self._search_frames = max(1, min(int(SPLIT_SEARCH_S / FRAME_S), self._max_frames // 2))
        self.reset()

    def reset(self) -> None:
        """Forget all audio and state (an utterance in progress is dropped without an event)."""
        self._pending = np.zeros(0, dtype=np.float32)
        self._frames: list[np.ndarray] = []  # retained frames, self._frames[0] is frame self._base
        self._probs: list[float] = []
        self._base = 0
        self._n_frames = 0
        self._n_samples = 0
        self._t_last = 0.0  # session time of sample self._n_samples - 1
        self._state = _State.IDLE
        self._voiced = False
        self._onset = 0  # first voiced frame of the current candidate/turn
        self._voiced_count = 0
        self._last_voiced = 0
        self._onset_sent = False  # a SpeechOnset went out for the current candidate
        self._piece_start = 0  # first frame of the current piece's audio
        self._first_piece = True
        self._paused = False  # a TurnPaused was sent and no speech followed yet
        self._probability: float | None = None  # the turn model's verdict at this pause
        self._model_ms: float | None = None
        reset_states = getattr(self._model, "reset_states", None)
        if reset_states is not None:
            reset_states()

    @property
    def in_speech(self) -> bool:
        """True between a SpeechStarted and the final Utterance of that turn."""
        return self._state is _State.SPEECH

    def push(self, samples: np.ndarray, t_s: float) -> list[Event]:
        """Feed 16 kHz float32 mono audio of any block size; `t_s` is the time of its last sample."""
        block = _as_mono_float32(samples)
        if block.size == 0:
            return []
        self._n_samples += block.size
        self._t_last = float(t_s)
        audio = np.concatenate([self._pending, block]) if self._pending.size else block
        n_full = audio.size // FRAME_SAMPLES
        events: list[Event] = []
        for i in range(n_full):
            frame = np.ascontiguousarray(audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES])
            events.extend(self._step(frame))
        self._pending = audio[n_full * FRAME_SAMPLES :].copy()
        return events

    def flush(self) -> list[Event]:
        """End a turn in progress now, as if silence followed (end of a file input)."""
        if self._state is not _State.SPEECH:
            dismissed = self._dismissal()
            self._state = _State.IDLE
            return dismissed
        return [self._finish_turn(detected_frame=self._n_frames - 1, reason="input ended")]

    # --- per-frame state machine ---

    def _step(self, frame: np.ndarray) -> list[Event]:
        k = self._n_frames
        prob = self._score(frame)
        self._frames.append(frame)
        self._probs.append(prob)
        self._n_frames += 1
        if prob >= self._threshold:
            self._voiced = True
        elif prob < self._neg_threshold:
            self._voiced = False
        events: list[Event] = []
        if self._state is _State.IDLE:
            if self._voiced:
                self._state, self._onset, self._voiced_count, self._last_voiced = _State.CANDIDATE, k, 0, k
                self._onset_sent = False
        if self._state is _State.CANDIDATE:
            events.extend(self._step_candidate(k))
        elif self._state is _State.SPEECH:
            events.extend(self._step_speech(k))
        self._trim(k)
        return events

    def _step_candidate(self, k: int) -> list[Event]:
        if self._voiced:
            self._voiced_count += 1
            self._last_voiced = k
        elif k - self._last_voiced >= self._min_silence_frames:
            log.debug("ignored %d voiced frames at %.2f s", self._voiced_count, self._frame_time(self._onset))
            dismissed = self._dismissal()
            self._state = _State.IDLE
            return dismissed
        if self._voiced_count < self._min_speech_frames:
            if self._onset_events and not self._onset_sent and self._voiced_count >= self._onset_frames:
                self._onset_sent = True
                detected_s = self._frame_time(k + 1) - 1 / MIC_RATE_HZ
                return [SpeechOnset(t_s=self._frame_time(self._onset), detected_s=detected_s)]
            return []
        self._state = _State.SPEECH
        self._piece_start = max(self._onset - self._pre_roll_frames, self._base)
        self._first_piece = True
        detected_s = self._frame_time(k + 1) - 1 / MIC_RATE_HZ
        return [SpeechStarted(t_s=self._frame_time(self._onset), detected_s=detected_s)]

    def _dismissal(self) -> list[Event]:
        """SpeechDismissed for a candidate that had sent a SpeechOnset, else nothing."""
        if self._state is not _State.CANDIDATE or not self._onset_sent:
            return []
        self._onset_sent = False
        return [SpeechDismissed(t_s=self._frame_time(self._onset))]

    def _step_speech(self, k: int) -> list[Event]:
        events: list[Event] = []
        if self._voiced:
            if self._paused:
                events.append(SpeechResumed(t_s=self._frame_time(k)))
            self._last_voiced, self._paused, self._probability, self._model_ms = k, False, None, None
        else:
            silent = k - self._last_voiced
            if silent == self._preempt_frames:
                self._paused = True
                events.append(self._pause(k))
            reason = self._end_reason(silent)
            if reason is not None:
                return [*events, self._finish_turn(detected_frame=k, reason=reason)]
        if k + 1 - self._piece_start >= self._max_frames:
            self._paused = False  # the pause's audio went to this piece: nothing to resume
            events.append(self._split(k))
        return events

    def _end_reason(self, silent_frames: int) -> str | None:
        """Whether `silent_frames` of silence end the turn, and why (asks the turn model once per pause)."""
        if self._turn_model is None:
            return "silence" if silent_frames >= self._min_silence_frames else None
        if silent_frames == self._complete_frames:
            audio = np.concatenate(self._frames[-TURN_WINDOW_FRAMES:])
            started = time.perf_counter()
            self._probability = self._turn_model.complete_probability(audio)
            self._model_ms = (time.perf_counter() - started) * 1000
            if self._probability >= self._config.turn_threshold:
                return "complete"
        return "incomplete" if silent_frames >= self._incomplete_frames else None

    def _pause(self, k: int) -> TurnPaused:
        """What was said so far: the current piece's audio up to this frame."""
        utterance = self._utterance(max(self._last_voiced + 1, self._piece_start), k + 1, k, final=False)
        return TurnPaused(utterance.samples, utterance.start_s, utterance.end_s, utterance.detected_s)

    def _finish_turn(self, detected_frame: int, reason: str) -> Utterance:
        end = max(self._last_voiced + 1, self._piece_start)
        stop = min(end + self._tail_frames, self._n_frames)
        utterance = self._utterance(end, stop, detected_frame, final=True)
        decision = TurnDecision(reason, (utterance.detected_s - utterance.end_s) * 1000, self._probability,
                                self._model_ms)
        self._state, self._paused, self._probability, self._model_ms = _State.IDLE, False, None, None
        return dataclasses.replace(utterance, decision=decision)

    def _split(self, k: int) -> Utterance:
        """Cut before the quietest recent frame, so the cut most likely falls between words."""
        lo = max(self._piece_start + 1, k + 1 - self._search_frames)
        window = self._probs[lo - self._base : k + 1 - self._base]
        cut = lo + int(np.argmin(window))
        utterance = self._utterance(cut, cut, k, final=False)
        self._piece_start = cut
        self._first_piece = False
        return utterance

    def _utterance(self, end: int, stop: int, detected_frame: int, *, final: bool) -> Utterance:
        """Frames [piece_start, stop) as audio; speech ends at frame `end`."""
        audio = np.concatenate(self._frames[self._piece_start - self._base : stop - self._base])
        speech_start = self._onset if self._first_piece else self._piece_start
        return Utterance(
            samples=audio,
            start_s=self._frame_time(speech_start),
            end_s=self._frame_time(end),
            detected_s=self._frame_time(detected_frame + 1) - 1 / MIC_RATE_HZ,
            final=final,
        )

    def _trim(self, k: int) -> None:
        if self._state is _State.IDLE:
            keep_from = k + 1 - self._pre_roll_frames
        elif self._state is _State.CANDIDATE:
            keep_from = self._onset - self._pre_roll_frames
        else:
            keep_from = self._piece_start
        drop = keep_from - self._base
        if drop > 0:
            del self._frames[:drop]
            del self._probs[:drop]
            self._base += drop

    def _score(self, frame: np.ndarray) -> float:
        if hasattr(type(self._model), "score"):  # a numpy model (Silero on onnxruntime): no torch here
            return float(self._model.score(frame))
        import torch

        with torch.inference_mode():
            return float(self._model(torch.from_numpy(frame), MIC_RATE_HZ).item())

    def _frame_time(self, frame_index: int) -> float:
        """Session time at the first sample of a frame."""
        sample = frame_index * FRAME_SAMPLES
        return self._t_last - (self._n_samples - 1 - sample) / MIC_RATE_HZ


def open_endpointer(config: VadConfig, warn: Callable[[str], None], *, model: Any = None,
                    onset_events: bool = False) -> Endpointer:
    """The session's endpointer; without the turn model it names, turns end on silence alone (and `warn` says so).

    `model` replaces the TorchScript Silero (the light remote path passes it on onnxruntime).
    """
    try:
        turn_model = load_turn_model(config.turn_model)
    except ModelError as exc:
        warn(f"{exc.one_line()}; until then turns end after vad.min_silence_ms of silence")
        return Endpointer(dataclasses.replace(config, turn_model="none"), model=model, onset_events=onset_events)
    return Endpointer(config, model=model, turn_model=turn_model, onset_events=onset_events)


def _frames(ms: int) -> int:
    """Whole 32 ms frames covering `ms` (at least one)."""
    return max(1, math.ceil(ms / 1000 / FRAME_S))


def _as_mono_float32(samples: np.ndarray) -> np.ndarray:
    block = mono_samples(samples)
    if np.issubdtype(block.dtype, np.integer):
        return (block.astype(np.float32) / 32768.0).astype(np.float32)
    return block.astype(np.float32, copy=False)
