"""Barge-in that does not misfire: pause on speech, then resume after a backchannel or cancel.

Voiced audio during a reply pauses the speaker at once but keeps the reply: its task goes
on generating into the held buffer. The pause comes early, on the VAD's first voiced
frames (`SpeechOnset`), because a pause costs nothing to undo: if those frames never add
up to speech (`SpeechDismissed`: a cough, a knock), the reply plays on. When real speech
ends, the controller asks `BargeInPolicy.resumes`: short speech (at most `max_speech_ms`) in which ASR found no
words or only backchannels ("mm-hm", "yeah", "嗯", "对", the configured list) resumes
the reply where it paused; anything else cancels it and becomes the user's turn. Either
way the history holds only what was heard, because the speaker's accounting counts
played samples, not written ones.

Matching ignores case, punctuation, spaces and repeated letters, so "Yeah, yeah.",
"mm-hmm" and "嗯嗯" match "yeah", "mm-hm" and "嗯"; a reply is a backchannel only when all
of it splits into listed entries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Protocol

from sisyphus.config import BACKCHANNELS
from sisyphus.frames import BargeIn, Utterance


def normalize(text: str) -> str:
    """Letters only (any script), lower case, runs of one letter collapsed to one."""
    out: list[str] = []
    for char in text.lower():
        if char.isalpha() and (not out or out[-1] != char):
            out.append(char)
    return "".join(out)


@lru_cache(maxsize=16)
def _entries(words: tuple[str, ...]) -> frozenset[str]:
    return frozenset(e for e in (normalize(w) for w in words) if e)


def only_backchannels(text: str, words: Iterable[str] = BACKCHANNELS) -> bool:
    """True when `text` holds no words, or splits entirely into backchannel entries."""
    target = normalize(text)
    if not target:
        return True
    entries = _entries(tuple(words))
    longest = max((len(e) for e in entries), default=0)
    reachable = [True] + [False] * len(target)  # reachable[i]: target[:i] splits into entries
    for end in range(1, len(target) + 1):
        for start in range(max(0, end - longest), end):
            if reachable[start] and target[start:end] in entries:
                reachable[end] = True
                break
    return reachable[-1]


@dataclass(frozen=True)
class BargeInPolicy:
    """When speech over a reply is a backchannel (resume) rather than a turn (cancel)."""

    max_speech_ms: float = 1500.0
    words: tuple[str, ...] = BACKCHANNELS

    @classmethod
    def from_config(cls, config: object) -> BargeInPolicy:
        """From a BackchannelConfig."""
        return cls(float(config.max_speech_ms), tuple(config.words))  # type: ignore[attr-defined]

    def resumes(self, text: str, speech_ms: float, final: bool = True) -> bool:
        return final and speech_ms <= self.max_speech_ms and only_backchannels(text, self.words)


@dataclass(frozen=True)
class PausedReply:
    """A reply held by voiced audio that began at `onset_s`."""

    turn_id: int
    onset_s: float
    confirmed: bool = False  # the VAD called it speech (SpeechStarted), not just voiced frames
    started_s: float | None = None  # when the VAD decided it was speech


class PausableSink(Protocol):
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def last_sound_end_s(self, turn_id: int) -> float | None: ...


class ReplyPause:
    """The one reply held by the user's voice, if any: pauses and resumes the sink, reports BargeIn.

    The controller decides when (it owns the turns); this keeps the bookkeeping, and the
    figures the events carry, out of it.
    """

    def __init__(self, sink: PausableSink, emit: Callable[[object], None], policy: BargeInPolicy) -> None:
        self._sink = sink
        self._emit = emit
        self.policy = policy
        self.held: PausedReply | None = None

    def hold(self, turn_id: int, onset_s: float, *, confirmed: bool = False, started_s: float | None = None) -> None:
        """Pause the reply (once); a later SpeechStarted only confirms the pause."""
        if self.held is not None:
            if confirmed and not self.held.confirmed:
                self.held = replace(self.held, confirmed=True, started_s=started_s)
            return
        self._sink.pause()
        self.held = PausedReply(turn_id, onset_s, confirmed, started_s)
        self._emit(BargeIn(turn_id, "paused"))

    def release_false_start(self) -> PausedReply | None:
        """The voiced frames never became speech: resume. Returns the released pause, if any."""
        held = self.held
        if held is None or held.confirmed:
            return None
        self.held = None
        pause_ms = self._pause_ms(held)  # before resuming: when the speaker went quiet
        self._sink.resume()
        self._emit(BargeIn(held.turn_id, "resumed", pause_ms=pause_ms))
        return held

    def decide(self, utt: Utterance, text: str) -> bool:
        """The speech ended: resume after a backchannel (True) or leave the reply to be cancelled (False)."""
        held, self.held = self.held, None
        assert held is not None, "decide() without a held reply"
        speech_ms = (utt.end_s - utt.start_s) * 1000
        resumed = self.policy.resumes(text, speech_ms, utt.final)
        vad_ms = None if held.started_s is None else (held.started_s - held.onset_s) * 1000
        action = "resumed" if resumed else "cancelled"
        self._emit(BargeIn(held.turn_id, action, text, speech_ms, self._pause_ms(held), vad_ms))
        if resumed:
            self._sink.resume()
        return resumed

    def forget(self) -> None:
        """The reply was cancelled (the sink's flush ended the pause) or the session ends."""
        self.held = None

    def _pause_ms(self, held: PausedReply) -> float | None:
        quiet_s = self._sink.last_sound_end_s(held.turn_id)
        return None if quiet_s is None else max(0.0, quiet_s - held.onset_s) * 1000
