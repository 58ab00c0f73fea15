"""`tts` stage: time to first audio and real-time factor for a 5 s reply, preset and cloned voice.

First audio is what the first chunk waits for once a phrase reaches TTS: prompt building,
prefill and the first `first_chunk_frames` frames plus their decode, with the chunking
the config sets for `talk`. Audible first audio is what a listener waits for: until the
first sample above -50 dBFS plays, on a speaker that starts with the first chunk (the
first codec frame is often near-silent; see sisyphus.tts.audible). The real-time factor
is the whole reply's wall time over its audio length. With random weights the reply is
forced to 63 frames (5.04 s at 12.5 Hz) (end of speech blocked until then); real weights
speak a sentence of about 5 s.
The cloned voice uses a clone prompt (reference codes and text) built once, outside the
timing, as `talk` builds it once when a voice is loaded.

Codes are chosen as `talk` chooses them (the checkpoint's sampling settings, `tts.seed`),
so the bench times the path a conversation runs, CUDA graphs included.
"""

from __future__ import annotations

import time
from typing import Any

from sisyphus.bench.context import BenchContext
from sisyphus.bench.stats import repeat
from sisyphus.frames import MIC_RATE_HZ
from sisyphus.tts.audible import AudibleTimer

FRAME_RATE_HZ = 12.5
REPLY_FRAMES = 63  # 5.04 s
# Random weights: any text long enough that the length guard does not cut the 63 frames.
RANDOM_TEXT = "Hello world, this is the voice test of the assistant reading a reply aloud."
# Real weights: about five seconds of speech.
REAL_TEXT = "It is a quarter past three in Paris, and the afternoon looks sunny and mild."


def run(ctx: BenchContext) -> None:
    ctx.say("tts: loading the CustomVoice model")
    preset = ctx.models.tts("tts_custom")
    speaker = preset.speakers[0]
    _measure(ctx, "preset", preset, speaker)
    from sisyphus.bench import memory

    memory.checkpoint(ctx)  # ASR (if loaded) + one TTS model: the configuration the README promises
    ctx.say("tts: loading the Base model and making a clone prompt")
    base = ctx.models.tts("tts_base")
    from sisyphus.bench.asr import speech_clip

    clip, clip_text = speech_clip()
    if getattr(base, "remote", False):  # a remote Base server clones from the reference on each request
        from sisyphus.tts.remote import CloneReference

        voice: Any = CloneReference.from_samples("bench", clip, MIC_RATE_HZ, clip_text)
        how = "its reference audio and text sent with each request"
    else:
        voice = base.create_clone_prompt(clip, MIC_RATE_HZ, clip_text)
        how = f"prompt with its text ({int(voice.ref_codes.shape[0])} reference frames)"
    _measure(ctx, "cloned", base, voice)
    ctx.report.note("tts", f"preset voice: {speaker}; cloned voice from {clip.size / MIC_RATE_HZ:.1f} s of speech, "
                           f"{how}")
    for key, model in (("tts_custom", preset), ("tts_base", base)):
        if getattr(model, "remote", False):
            ctx.report.note("tts", f"{key} served by {model.endpoint.base_url}: first audio is over HTTP, "
                                   "from sending the request to the first audio decoded here")
    tts = ctx.config.tts
    length = (f"forced to {REPLY_FRAMES} frames ({REPLY_FRAMES / FRAME_RATE_HZ:.2f} s), sampled as talk samples"
              if ctx.random_weights else f"the sentence {REAL_TEXT!r}")
    ctx.report.note("tts", f"reply: {length}; first chunk {tts.first_chunk_frames} frames, "
                           f"then {tts.chunk_frames} per chunk")


def _measure(ctx: BenchContext, label: str, model: Any, voice: Any) -> None:
    """Stream the reply warmup + repeats times; add first-audio and real-time-factor figures."""
    tts = ctx.config.tts
    language = None if ctx.config.voice.language == "auto" else ctx.config.voice.language
    options: dict[str, Any] = {"first_chunk_frames": tts.first_chunk_frames, "chunk_frames": tts.chunk_frames,
                               "language": language, "seed": tts.seed}
    text = REAL_TEXT
    if ctx.random_weights:
        text = RANDOM_TEXT
        options.update(min_frames=REPLY_FRAMES, max_frames=REPLY_FRAMES)

    def once() -> tuple[Any, float | None]:
        timer = AudibleTimer(model.sample_rate_hz, time.perf_counter())
        for chunk in model.stream(text, voice, **options):
            timer.add(chunk, time.perf_counter())
        return model.last_stats, timer.audible_s

    ctx.say(f"tts: {label} voice")
    runs = repeat(ctx.warmup, ctx.repeats, once)
    stats = [s for s, _ in runs]
    meta = {"frames": [s.frames for s in stats], "audio_s": [s.audio_s for s in stats],
            "graphed": [s.graphed for s in stats]}
    if not getattr(model, "remote", False):  # a server's own split is not visible from here
        meta.update({
            # where the time goes, per reply: prompt + prefill, one frame step, the vocoder per frame
            "prefill_ms": [s.prefill_s * 1000 for s in stats],
            "step_ms_per_frame": [s.steps_s * 1000 / max(s.frames, 1) for s in stats],
            "decode_ms_per_frame": [s.decode_s * 1000 / max(s.frames, 1) for s in stats]})
    last = stats[-1]
    ctx.report.add("tts", f"first audio ({label})", "ms", [s.first_audio_s * 1000 for s in stats],
                   note=f"{tts.first_chunk_frames} frames", meta=meta)
    _add_audible(ctx, label, [a for _, a in runs], meta)
    ctx.report.add("tts", f"real-time factor ({label})", "x", [s.real_time_factor for s in stats],
                   note=f"{last.frames} frames, {last.audio_s:.2f} s of audio", meta=meta)


def _add_audible(ctx: BenchContext, label: str, audible_s: list[float | None], meta: dict[str, Any]) -> None:
    """The audible first audio figure, over the replies that had a sample above -50 dBFS at all."""
    heard = [a * 1000 for a in audible_s if a is not None]
    silent = len(audible_s) - len(heard)
    name = f"audible first audio ({label})"
    if heard:
        ctx.report.add("tts", name, "ms", heard, note="first sample > -50 dBFS",
                       meta={**meta, "silent_replies": silent})
    if silent:
        ctx.report.note("tts", f"{name}: {silent} of {len(audible_s)} replies never rose above -50 dBFS")
