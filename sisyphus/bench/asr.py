"""`asr` stage: how long GLM-ASR takes to transcribe 2, 5, 10 and 20 s utterances.

The time is what the user waits for after the endpointer closed a turn: the processor's
feature extraction, the audio encoder, prefill and greedy decoding, measured per call.
With real weights the call is `transcribe`, as `talk` makes it. Random weights would
stop at a random point (or never), so their transcript length is forced to a typical
speaking rate, which keeps the decode work equal to a real transcript's.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

from sisyphus.bench.context import BenchContext
from sisyphus.bench.stats import repeat, timed
from sisyphus.frames import MIC_RATE_HZ

log = logging.getLogger(__name__)

UTTERANCE_S = (2, 5, 10, 20)
# English speech runs at about 2.5 words (3-4 tokens) a second; random weights get this many.
TOKENS_PER_S = 3.5
GAP_S = 0.3  # silence between looped clips, as between sentences


def forced_tokens(seconds: float) -> int:
    return max(1, round(TOKENS_PER_S * seconds))


def speech_audio(seconds: float) -> np.ndarray:
    """`seconds` of 16 kHz speech: the packaged clips looped, else synthetic voiced audio."""
    n = int(round(seconds * MIC_RATE_HZ))
    clips = _clips()
    if not clips:
        from sisyphus.bench.vad import synthetic_speech

        return synthetic_speech(seconds)
    gap = np.zeros(int(GAP_S * MIC_RATE_HZ), np.float32)
    pieces: list[np.ndarray] = []
    total = 0
    while total < n:
        clip = clips[len(pieces) // 2 % len(clips)]
        pieces += [clip, gap]
        total += clip.size + gap.size
    return np.concatenate(pieces)[:n]


def speech_clip() -> tuple[np.ndarray, str]:
    """One packaged clip (16 kHz) and the sentence it holds; synthetic audio when none ship."""
    clips = _clips()
    if not clips:
        from sisyphus.bench.vad import synthetic_speech

        return synthetic_speech(3.0), "This is a short reference recording of my voice."
    from sisyphus.bench.clips import clip_texts

    return clips[0], next(iter(clip_texts().values()))


@functools.lru_cache(maxsize=1)
def _clips() -> tuple[np.ndarray, ...]:
    """The clips as float32 at 16 kHz, read once (they are a few hundred kB)."""
    try:
        from sisyphus.bench.clips import clip_paths
    except ImportError:
        return ()
    import soundfile as sf

    clips = []
    for path in clip_paths():
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        if rate != MIC_RATE_HZ:
            import librosa

            audio = librosa.resample(audio, orig_sr=rate, target_sr=MIC_RATE_HZ)
        clips.append(audio.astype(np.float32))
    return tuple(clips)


def run(ctx: BenchContext) -> None:
    engine = ctx.models.asr()
    for seconds in UTTERANCE_S:
        ctx.say(f"asr: {seconds} s utterance")
        audio = speech_audio(seconds)
        if ctx.random_weights:
            tokens = forced_tokens(seconds)

            def call(audio: np.ndarray = audio, tokens: int = tokens) -> int:
                ids = engine.generate_ids(audio, max_new_tokens=tokens, min_new_tokens=tokens)
                engine.decode(ids)
                return len(ids)
        else:

            def call(audio: np.ndarray = audio) -> int:
                return len(ctx.models.transcribe(audio).split())

        runs = repeat(ctx.warmup, ctx.repeats, lambda call=call: timed(ctx.device, call))
        counts = [count for _, count in runs]
        what = "tokens" if ctx.random_weights else "words"
        ctx.report.add(
            "asr", f"{seconds} s utterance", "ms", [s * 1000 for s, _ in runs],
            note=f"{counts[-1]} {what}", meta={"audio_s": float(seconds), what: counts},
        )
    if ctx.random_weights:
        lengths = ", ".join(str(forced_tokens(s)) for s in UTTERANCE_S)
        ctx.report.note("asr", f"random weights: transcript length forced to {TOKENS_PER_S:g} tokens per second "
                               f"of audio ({lengths} tokens)")
    source = "packaged speech clips, looped" if _clips() else "synthetic voiced audio"
    ctx.report.note("asr", f"audio: {source}")
    if getattr(engine, "remote", False):
        ctx.report.note("asr", f"served by {engine.endpoint.base_url}: each time includes the WAV upload "
                               "and the server's queue")
