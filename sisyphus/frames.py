"""The small typed, frozen messages that flow between stages over asyncio queues.

Audio is float32 mono numpy arrays in [-1, 1]. Times named `*_s` are seconds on the
session clock (`time.monotonic()`), so latencies are plain differences. Every frame of a
reply carries its `turn_id`; consumers drop frames of a turn that is no longer current.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

MIC_RATE_HZ = 16_000
SPEAKER_RATE_HZ = 24_000


def mono_samples(samples: np.ndarray) -> np.ndarray:
    """A 1-D view of mono audio given as (n,), (n, 1) or (1, n); anything else is a ValueError."""
    audio = np.asarray(samples)
    if audio.ndim == 2 and 1 in audio.shape:
        audio = audio.reshape(-1)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio (1-D samples), got shape {audio.shape}")
    return audio


@dataclass(frozen=True)
class AudioBlock:
    """A block of microphone (or --input file) audio at 16 kHz."""

    samples: np.ndarray
    t_s: float  # session-clock time of the block's last sample


@dataclass(frozen=True)
class SpeechStarted:
    """VAD saw the minimum speech: a turn begins (and a reply in flight is barged into)."""

    t_s: float  # when speech began (the first voiced frame)
    detected_s: float | None = None  # when the VAD decided (end of the deciding frame)


@dataclass(frozen=True)
class SpeechOnset:
    """The first voiced frames, before they count as speech: a reply in flight pauses on them.

    Sent only by an Endpointer made with `onset_events=True`; followed by SpeechStarted, or
    by SpeechDismissed when the voiced frames stop short of `min_speech_ms`.
    """

    t_s: float  # the first voiced frame
    detected_s: float  # end of the frame that made it an onset


@dataclass(frozen=True)
class SpeechDismissed:
    """The voiced frames after a SpeechOnset never became speech (a cough, a knock)."""

    t_s: float  # the onset it dismisses


@dataclass(frozen=True)
class Utterance:
    """A stretch of speech, pre-roll included, ready for ASR."""

    samples: np.ndarray  # 16 kHz
    start_s: float
    end_s: float  # when the speech ended (before the trailing silence)
    detected_s: float  # when the endpointer decided the utterance was over
    final: bool = True  # False for a piece cut from speech longer than the ASR window
    decision: TurnDecision | None = None  # why the turn ended (final utterances of the endpointer)


@dataclass(frozen=True)
class TurnDecision:
    """Why the endpointer ended a turn: the turn model's verdict and the silence waited.

    reason: "complete" (the turn model said so after the short silence), "incomplete"
    (it said not, and the long silence passed), "silence" (no turn model: the plain
    silence passed) or "input ended".
    """

    reason: str
    silence_ms: float  # from the end of speech to the decision
    probability: float | None = None  # the turn model's probability that the turn is complete
    model_ms: float | None = None  # its inference time (features included)


@dataclass(frozen=True)
class TurnPaused:
    """A short pause inside a turn: what was said so far, for a reply prepared ahead.

    The turn may still go on (SpeechResumed follows) or end (an Utterance follows with no
    speech in between, so with the same words). Fields as in Utterance.
    """

    samples: np.ndarray  # 16 kHz, from the turn's start (pre-roll included) to now
    start_s: float
    end_s: float
    detected_s: float


@dataclass(frozen=True)
class SpeechResumed:
    """Speech again after a TurnPaused, in the same turn: what was prepared is stale."""

    t_s: float


class State(str, enum.Enum):
    IDLE = "idle"
    LISTENING = "listening"
    TRANSCRIBING = "transcribing"
    THINKING = "thinking"
    SPEAKING = "speaking"


@dataclass(frozen=True)
class PcmChunk:
    """A piece of a reply's speech at 24 kHz, tagged with its turn and phrase."""

    turn_id: int
    samples: np.ndarray
    phrase_index: int


# --- events for the UI and the transcript (consumers of the event queue) ---


@dataclass(frozen=True)
class StateChanged:
    state: State
    turn_id: int


@dataclass(frozen=True)
class UserSaid:
    turn_id: int
    text: str


@dataclass(frozen=True)
class AssistantSaid:
    """What the assistant said in a turn, as far as it was actually played."""

    turn_id: int
    text: str
    interrupted: bool
    full_text: str = ""  # everything the LLM produced, played or not
    finish_reason: str | None = None  # how the LLM ended the reply: "stop", "length" (cut at max_tokens), ...


@dataclass(frozen=True)
class TurnLatency:
    """A turn's latency breakdown in milliseconds.

    Each stage is its own duration: ASR compute, LLM request to first token, phrase
    handed to TTS to its first audio. voice_to_voice_ms is the whole wait the user
    hears: end of their speech (before the endpointing silence) to the first sound.
    """

    turn_id: int
    asr_ms: float | None = None
    llm_first_token_ms: float | None = None
    tts_first_audio_ms: float | None = None
    voice_to_voice_ms: float | None = None
    tts_rtf: float | None = None  # median real-time factor of the turn's phrases (< 1 keeps up)
    extra: dict[str, float] = field(default_factory=dict)
    # Phrase handed to TTS to the first sample above -50 dBFS as the speaker plays it
    # (tts_first_audio_ms is to the first chunk, which may be near-silent); sisyphus.tts.audible.
    tts_audible_ms: float | None = None


@dataclass(frozen=True)
class InputLevel:
    rms_dbfs: float


@dataclass(frozen=True)
class Notice:
    """A one-line message for the user (model loaded, endpoint down, device lost, ...)."""

    text: str
    level: str = "info"  # info | warning | error


@dataclass(frozen=True)
class TurnEnded:
    """The end-of-turn decision of a turn that got a reply (for the UI and the transcript)."""

    turn_id: int
    decision: TurnDecision


@dataclass(frozen=True)
class PreemptiveReply:
    """A reply prepared at a pause: used when the turn ended there (hit), else dropped unheard.

    head_start_ms: how long before the end of turn was confirmed the preparation began
    (hits only). turn_id is None for a miss: the dropped reply never became a turn.
    """

    hit: bool
    text: str  # what the user had said at the pause
    turn_id: int | None = None
    head_start_ms: float | None = None


@dataclass(frozen=True)
class EchoStatus:
    """The microphone's echo canceller: whether it runs, and how much echo it removed.

    Sent when the microphone opens, then after each stretch of playback (about one reply).
    """

    state: str  # "on" | "off"
    detail: str = ""  # what runs (AEC3, noise suppression, ...) or why it is off
    echo_reduction_db: float | None = None  # median over 100 ms windows of the last stretch
    echo_dbfs: float | None = None  # what the microphone heard while the reply played
    seconds: float = 0.0  # playback the figure covers


@dataclass(frozen=True)
class BargeIn:
    """Speech during a reply: the reply `paused`, then `resumed` (a backchannel) or `cancelled`."""

    turn_id: int
    action: str  # "paused" | "resumed" | "cancelled"
    text: str = ""  # what the user said, when it was transcribed
    speech_ms: float | None = None  # how long the user spoke
    pause_ms: float | None = None  # from speech start to the speaker going quiet
    vad_ms: float | None = None  # from speech start to the VAD's decision that it was speech
