"""`sisyphus bench pipeline`: voice to voice on a scripted conversation, and Sisyphus's share of it.

The real session runs (the one `sisyphus talk --input` runs: Silero endpointing, the turn
controller, ASR, the streaming LLM client, the phrase chunker, streaming TTS, a file sink)
on the packaged speech clips, against the stand-in OpenAI server on 127.0.0.1 whose time
to first token is fixed. Because the LLM's wait and the endpointing silence are known,
what remains of voice to voice is Sisyphus's own:

    voice to voice = first reply sound - end of user speech (TurnLatency.voice_to_voice_ms;
                     the endpointing silence is inside it)
    own share      = voice to voice - LLM time to first token (as measured) - endpoint silence
    overhead       = own share - ASR compute - TTS time to first audio
    TTS audible    = phrase to the first reply sample above -50 dBFS (beside first audio,
                     whose first chunk may be near-silent; sisyphus.tts.audible)

Part of that overhead is the wait for the next output block (the sink, like a speaker,
takes audio block by block, `audio.output_block_ms`); it is reported on its own row,
measured from the first reply samples handed to the sink to the time they are stamped.

The server sends the whole reply at its first token (no inter-token delay), so the LLM
costs exactly its time to first token and the first phrase is complete at that moment.

Clips are played as a microphone would deliver them, in real time, with silence between
them; the next clip starts only once the previous turn has finished playing, so no turn
barges into another and a slow machine stretches the conversation instead of garbling it.

The conversation runs three times on the same clips: first with turns ending on the plain
silence (`vad.turn_model: none`, no prepared replies), which the figures above describe,
then with semantic end of turn and replies prepared at a pause, then with prepared
replies alone (`sisyphus.bench.semantic` reports their voice to voice beside the first).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sisyphus.audio.sink import FileSink
from sisyphus.bench.clips import clip_paths
from sisyphus.bench.context import BenchContext
from sisyphus.bench.llm_server import Behavior, OpenAITestServer
from sisyphus.config import Config
from sisyphus.frames import MIC_RATE_HZ, AudioBlock, PreemptiveReply, State, StateChanged, TurnLatency, UserSaid

log = logging.getLogger(__name__)

STAGE = "pipeline"
# The stand-in LLM's fixed time to first token.
FIRST_TOKEN_DELAY_S = 0.2
LLM_MODEL = "bench-model"
# One sentence: one phrase for TTS, so a turn's audio stays bounded.
REPLY_TEXT = "Here is a short answer for you."
# Longest reply phrase: random weights never end a phrase by themselves.
PHRASE_CAP_S = 2.0
# Silence before the first clip, and after a reply has finished before the next clip.
LEAD_IN_S = 0.5
GAP_AFTER_TURN_S = 0.5
# What a random-weight ASR "heard" when its forced ids decode to nothing.
RANDOM_TRANSCRIPT = "(random-weight transcript)"
# A turn (clip played to reply finished) slower than this ends the stage.
TURN_TIMEOUT_S = 180.0

# Figure names, in the order they are reported.
VOICE_TO_VOICE = "voice to voice"
LLM_FIRST_TOKEN = "LLM time to first token"
ENDPOINT_SILENCE = "endpoint silence"
OWN_SHARE = "Sisyphus's own share"
ASR = "ASR"
TTS_FIRST_AUDIO = "TTS first audio"
TTS_AUDIBLE = "TTS audible first audio"
OVERHEAD = "overhead outside model compute"
OUTPUT_WAIT = "output block wait"
LLM_CLIENT = "LLM request overhead"


@dataclass(frozen=True)
class TurnFigures:
    """One turn's latencies in ms, and the clip that started it."""

    clip: str
    voice_to_voice_ms: float
    llm_first_token_ms: float
    endpoint_ms: float
    asr_ms: float
    tts_first_audio_ms: float
    output_wait_ms: float  # first samples handed to the sink → their play time (part of the overhead)
    tts_audible_ms: float | None = None  # phrase → first sample above -50 dBFS; None: never that loud

    @property
    def own_share_ms(self) -> float:
        return self.voice_to_voice_ms - self.llm_first_token_ms - self.endpoint_ms

    @property
    def overhead_ms(self) -> float:
        return self.own_share_ms - self.asr_ms - self.tts_first_audio_ms


@dataclass
class ConversationResult:
    """What a scripted conversation produced: per played clip, its TurnLatency or None."""

    clips: list[str]
    attempts: list[TurnLatency | None] = field(default_factory=list)
    output_wait_ms: dict[int, float] = field(default_factory=dict)  # turn id → output block wait
    errors: list[str] = field(default_factory=list)
    stopped: str = ""  # why the conversation ended early, "" when every clip was played
    prepared: dict[str, int] = field(default_factory=lambda: {"hits": 0, "misses": 0})  # preemptive replies


class TurnTimeout(Exception):
    """A turn did not finish in time; ends the conversation (not a user error)."""


def run(ctx: BenchContext) -> None:
    """Play the clips ctx.repeats times after ctx.warmup warm-up turns and report per-turn figures."""
    clips = clip_paths()
    script = [clips[i % len(clips)] for i in range(ctx.warmup)] + clips * ctx.repeats
    behavior = Behavior(reply=REPLY_TEXT, chunk_chars=8, first_token_delay_s=FIRST_TOKEN_DELAY_S)
    ctx.say(f"pipeline: {len(script)} turns ({ctx.warmup} warm-up), LLM first token fixed at "
            f"{FIRST_TOKEN_DELAY_S * 1000:.0f} ms")
    from sisyphus.bench import semantic

    with OpenAITestServer(models=(LLM_MODEL,), default=behavior) as server:
        config = session_config(ctx.config, server.base_url)
        plain = semantic.turn_taking(config, semantic=False, prepared=False)
        result = run_conversation(ctx, plain, script)
        if not ctx.turn_taking:
            report_conversation(ctx, plain, result, warmup=ctx.warmup)
            ctx.report.note("pipeline", "turn-taking runs (semantic end of turn, prepared replies) left out: "
                                        "--no-turn-taking")
            return
        ctx.say("pipeline: the same clips with semantic end of turn and prepared replies")
        with_semantic = semantic.turn_taking(config, semantic=True, prepared=True)
        semantic_result = run_conversation(ctx, with_semantic, script)
        ctx.say("pipeline: the same clips with prepared replies alone")
        prepared_result = run_conversation(ctx, semantic.turn_taking(config, semantic=False, prepared=True), script)
    report_conversation(ctx, plain, result, warmup=ctx.warmup)
    semantic.report(ctx, with_semantic, semantic_result, result, warmup=ctx.warmup)
    semantic.report_prepared_only(ctx, prepared_result, result, warmup=ctx.warmup)


def session_config(config: Config, llm_url: str) -> Config:
    """The user's config pointed at the stand-in server, with reply phrases bounded in length."""
    llm = dataclasses.replace(config.llm, base_url=llm_url, model=LLM_MODEL, api_key="", max_retries=0,
                              timeout_s=30.0)
    tts = dataclasses.replace(config.tts, max_seconds_per_phrase=min(config.tts.max_seconds_per_phrase, PHRASE_CAP_S))
    return dataclasses.replace(config, llm=llm, tts=tts)


def run_conversation(ctx: BenchContext, config: Config, script: list[Path]) -> ConversationResult:
    """One real session over `script` on ctx.models; output goes to a WAV in a temporary folder."""
    from sisyphus.agent.build import Prepared, TalkOptions, build_session
    from sisyphus.audio.source import load_audio
    from sisyphus.voices.router import VoiceRouter

    result = ConversationResult([p.name for p in script])
    recorder = _Recorder(result, ctx.say)
    with tempfile.TemporaryDirectory(prefix="sisyphus-bench-") as tmp:
        router = VoiceRouter.from_config(config, notify=recorder.notice)
        voice = router.default_voice()
        source = ConversationSource(
            [load_audio(p, MIC_RATE_HZ) for p in script], recorder.settled, block_ms=config.audio.input_block_ms
        )
        sink = _StampedFileSink(Path(tmp) / "replies.wav", block_ms=config.audio.output_block_ms)
        ready = Prepared(source, sink, router, voice, router.model_for(voice))
        options = TalkOptions(transcript_dir=Path(tmp) / "transcripts", read_keyboard=False)
        models: Any = _ForcedLengthAsr(ctx.models) if ctx.random_weights else ctx.models
        parts, _ = build_session(config, options, ready, recorder, recorder.notice, models=models)
        try:
            asyncio.run(_bounded_session(parts, len(script)))
        except TurnTimeout as exc:
            result.stopped = str(exc)
        result.output_wait_ms = sink.output_wait_ms()
    return result


class _ForcedLengthAsr:
    """ctx.models as the session sees it, with transcripts of a forced length (random weights).

    Random ASR weights stop at a random token, often at once, and an empty transcript
    ends the turn before the LLM; forcing the length the asr stage uses keeps the decode
    work of a real transcript and a turn for every clip. Everything else is ctx.models.
    """

    def __init__(self, models: Any) -> None:
        self._models = models

    def __getattr__(self, name: str) -> Any:
        return getattr(self._models, name)

    def transcribe(self, samples_16k: np.ndarray) -> str:
        from sisyphus.bench.asr import forced_tokens

        engine = self._models.asr()
        tokens = forced_tokens(samples_16k.size / MIC_RATE_HZ)
        ids = engine.generate_ids(samples_16k, max_new_tokens=tokens, min_new_tokens=tokens)
        # Random ids can all be special tokens; the turn goes on with a stand-in text.
        return engine.decode(ids) or RANDOM_TRANSCRIPT


class _StampedFileSink(FileSink):
    """The file sink `talk --output` uses, also noting when each turn's first audio was handed over."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._first_write_s: dict[int, float] = {}

    def write(self, turn_id: int, samples: np.ndarray) -> None:
        self._first_write_s.setdefault(turn_id, self._clock())
        super().write(turn_id, samples)

    def output_wait_ms(self) -> dict[int, float]:
        waits = {}
        for turn_id, written_s in self._first_write_s.items():
            sound_s = self.first_sound_s(turn_id)
            if sound_s is not None:
                waits[turn_id] = (sound_s - written_s) * 1000
        return waits


async def _bounded_session(parts: Any, turns: int) -> None:
    from sisyphus.agent.session import run_session

    # The source bounds each turn; this bounds what it cannot see (a reply that never ends).
    limit_s = turns * TURN_TIMEOUT_S + 60.0
    try:
        await asyncio.wait_for(run_session(parts), limit_s)
    except asyncio.TimeoutError as exc:
        raise TurnTimeout(f"the conversation did not finish within {limit_s:.0f} s") from exc


class _Recorder:
    """Consumes the session's events: per-clip outcomes for the source and the report."""

    def __init__(self, result: ConversationResult, say: Callable[[str], None]) -> None:
        self._result = result
        self._say = say
        self._state = State.IDLE
        self._heard = False  # a UserSaid since the last settled attempt

    def settled(self) -> int:
        """Clips whose turn is over: replied to, or heard as nothing (empty transcription)."""
        return len(self._result.attempts)

    def notice(self, text: str) -> None:
        log.info("%s", text)

    def handle(self, event: object) -> None:
        attempts = self._result.attempts
        if isinstance(event, UserSaid):
            self._heard = True
        elif isinstance(event, TurnLatency):
            attempts.append(event)
            self._heard = False
            self._say(f"pipeline: turn {len(attempts)}/{len(self._result.clips)}: voice to voice "
                      f"{_fmt_ms(event.voice_to_voice_ms)}")
        elif isinstance(event, StateChanged):
            if self._state is State.TRANSCRIBING and event.state is State.IDLE and not self._heard:
                attempts.append(None)  # ASR heard nothing: the clip got no turn
            self._state = event.state
        elif isinstance(event, PreemptiveReply):
            self._result.prepared["hits" if event.hit else "misses"] += 1
        elif getattr(event, "level", "") == "error":
            self._result.errors.append(str(getattr(event, "text", event)))


class ConversationSource:
    """An AudioSource playing clips like a microphone, each after the previous turn is over.

    Blocks are released in real time on a fixed grid (block k at origin + (k+1) * block),
    as FileSource does for `talk --input`; between clips it sends silence until
    `settled()` counts the previous clip, then GAP_AFTER_TURN_S more.
    """

    def __init__(self, clips: list[np.ndarray], settled: Callable[[], int], *, block_ms: int = 32,
                 clock: Callable[[], float] = time.monotonic, turn_timeout_s: float = TURN_TIMEOUT_S) -> None:
        self.dropped_blocks = 0  # the AudioSource contract; nothing is ever dropped here
        self.block_samples = MIC_RATE_HZ * block_ms // 1000
        self._clips = clips
        self._settled = settled
        self._clock = clock
        self._turn_timeout_s = turn_timeout_s
        self._silence = np.zeros(self.block_samples, dtype=np.float32)

    async def __aenter__(self) -> ConversationSource:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def __aiter__(self) -> AsyncIterator[AudioBlock]:
        return self._blocks()

    async def _blocks(self) -> AsyncIterator[AudioBlock]:
        pace = _Pacer(self._clock, self.block_samples)
        for _ in range(_blocks_for(LEAD_IN_S, self.block_samples)):
            yield await pace.block(self._silence)
        for index, clip in enumerate(self._clips):
            padded = np.zeros(-(-clip.size // self.block_samples) * self.block_samples, dtype=np.float32)
            padded[: clip.size] = clip
            for start in range(0, padded.size, self.block_samples):
                yield await pace.block(padded[start : start + self.block_samples])
            deadline_s = self._clock() + self._turn_timeout_s
            while self._settled() <= index:
                if self._clock() > deadline_s:
                    raise TurnTimeout(f"turn {index + 1} did not finish within {self._turn_timeout_s:g} s")
                yield await pace.block(self._silence)
            for _ in range(_blocks_for(GAP_AFTER_TURN_S, self.block_samples)):
                yield await pace.block(self._silence)


class _Pacer:
    """Releases blocks when the clock reaches their last sample's time, like a microphone."""

    def __init__(self, clock: Callable[[], float], block_samples: int) -> None:
        self._clock = clock
        self._block_s = block_samples / MIC_RATE_HZ
        self._origin_s = clock()
        self._index = 0

    async def block(self, samples: np.ndarray) -> AudioBlock:
        self._index += 1
        t_s = self._origin_s + self._index * self._block_s
        delay_s = t_s - self._clock()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        return AudioBlock(samples.copy(), t_s)


def _blocks_for(seconds: float, block_samples: int) -> int:
    return max(1, round(seconds * MIC_RATE_HZ / block_samples))


def turn_figures(result: ConversationResult, warmup: int) -> tuple[list[TurnFigures], list[str]]:
    """Complete turns after the warm-up, and why the others are left out."""
    turns: list[TurnFigures] = []
    left_out: list[str] = []
    if len(result.attempts) > len(result.clips):
        # The endpointer cut a clip in two: the clip of each later turn is a guess.
        left_out.append(f"{len(result.attempts)} turns for {len(result.clips)} clips (a clip was heard as two)")
    for index, latency in enumerate(result.attempts):
        if index < warmup:
            continue
        clip = result.clips[min(index, len(result.clips) - 1)]
        if latency is None:
            left_out.append(f"{clip}: ASR heard nothing")
            continue
        values = (latency.voice_to_voice_ms, latency.llm_first_token_ms, latency.extra.get("endpoint_ms"),
                  latency.asr_ms, latency.tts_first_audio_ms, result.output_wait_ms.get(latency.turn_id))
        if any(v is None for v in values):
            left_out.append(f"{clip}: turn {latency.turn_id} incomplete (no reply sound or no LLM token)")
            continue
        turns.append(TurnFigures(clip, *(float(v) for v in values),  # type: ignore[arg-type]
                                 tts_audible_ms=latency.tts_audible_ms))
    return turns, left_out


def report_conversation(ctx: BenchContext, config: Config, result: ConversationResult, *, warmup: int) -> None:
    """Per-turn figures (values in turn order, aligned across figures) and the notes that explain them."""
    turns, left_out = turn_figures(result, warmup)
    report = ctx.report
    meta = {"clips": [t.clip for t in turns], "first_token_delay_ms": FIRST_TOKEN_DELAY_S * 1000}
    delay_ms = FIRST_TOKEN_DELAY_S * 1000
    if turns:
        rows = [
            (VOICE_TO_VOICE, [t.voice_to_voice_ms for t in turns], "end of speech → first reply sound"),
            (LLM_FIRST_TOKEN, [t.llm_first_token_ms for t in turns], f"server's fixed delay {delay_ms:.0f} ms"),
            (ENDPOINT_SILENCE, [t.endpoint_ms for t in turns], f"vad.min_silence_ms={config.vad.min_silence_ms}"),
            (OWN_SHARE, [t.own_share_ms for t in turns], "v2v − LLM first token − endpoint; target ≤ 200 ms"),
            (ASR, [t.asr_ms for t in turns], "in the session"),
            (TTS_FIRST_AUDIO, [t.tts_first_audio_ms for t in turns], "phrase → first chunk"),
            (OVERHEAD, [t.overhead_ms for t in turns], "own share − ASR − TTS first audio; target ≤ 5 ms"),
            (OUTPUT_WAIT, [t.output_wait_ms for t in turns],
             f"part of the overhead: next {config.audio.output_block_ms} ms output block"),
            (LLM_CLIENT, [t.llm_first_token_ms - delay_ms for t in turns], "measured first token − fixed delay"),
        ]
        heard = [t for t in turns if t.tts_audible_ms is not None]
        for name, values, note in rows:
            report.add(STAGE, name, "ms", values, note, meta=meta)
            if name == TTS_FIRST_AUDIO and heard:  # per turn that rose above -50 dBFS at all
                report.add(STAGE, TTS_AUDIBLE, "ms", [t.tts_audible_ms for t in heard],
                           "phrase → first sample > −50 dBFS", meta={**meta, "clips": [t.clip for t in heard]})
        if len(heard) < len(turns):
            report.note(STAGE, f"{TTS_AUDIBLE}: {len(turns) - len(heard)} of {len(turns)} replies never rose "
                               "above -50 dBFS")
    report.note(STAGE, (
        f"{len(turns)} turns over {len(set(result.clips))} espeak-ng clips after {warmup} warm-up turn(s); LLM on "
        f"127.0.0.1 with first token at {delay_ms:.0f} ms and the whole reply at once; voice to voice counts from "
        f"the end of speech, so it includes the endpoint silence"))
    cap = f"reply phrases cut at {config.tts.max_seconds_per_phrase:g} s (tts.max_seconds_per_phrase)"
    if ctx.random_weights:
        cap += "; random weights: ASR transcripts forced to the asr stage's length"
    report.note(STAGE, cap)
    for text in left_out + result.errors[:3] + ([result.stopped] if result.stopped else []):
        report.note(STAGE, text)


def _fmt_ms(value: float | None) -> str:
    return "no sound" if value is None else f"{value:.0f} ms"
