"""`turn` stage: what Smart Turn costs per decision on one thread, and how it ends turns on speech.

Cost: the Whisper features and the ONNX model timed apart and together, on 8 s of the
packaged speech, onnxruntime and torch on one thread each (the target, ≤ 15 ms per
inference, is per core); also the thread's CPU time, which a busy shared machine does
not inflate the way it inflates wall time.

Decisions, when espeak-ng is installed: finished sentences and sentences that trail off
("I'd like to book a table for, um"), each followed by silence, pushed through the real
endpointer (Silero + Smart Turn, the configured thresholds). A finished sentence should
end after the short silence; a trailing one that ends there is a cut-off. The delay is
the silence the endpointer waited (audio time), not counting the model's own time.
"""

from __future__ import annotations

import dataclasses
import io
import shutil
import subprocess
import time

import numpy as np

from sisyphus.bench.context import BenchContext
from sisyphus.frames import MIC_RATE_HZ, Utterance

STAGE = "turn"
FINISHED = (
    "I'd like to book a table for two at seven tonight.",
    "What is the capital of France?",
    "Tell me a joke.",
    "Thank you very much.",
    "What's the weather like tomorrow in Berlin?",
    "Can you set a timer for ten minutes?",
    "Please turn off the lights in the kitchen.",
    "How far away is the moon?",
)
TRAILING = (
    "I'd like to book a table for, um",
    "I was wondering if you could",
    "So the thing is, I need to",
    "Can you tell me about the",
    "My favourite colour is, uh",
    "Let me think, I want to go to",
    "And then we, uh",
    "What I really want is, um",
)
LEAD_S = 0.6
AFTER_S = 2.5  # longer than the long silence, so every sentence ends by itself
WARMUP_RUNS = 3


def run(ctx: BenchContext) -> None:
    ctx.say("turn: Smart Turn cost per inference and end-of-turn decisions")
    from sisyphus.vad.turn import SmartTurn

    model = SmartTurn(threads=1)
    _cost(ctx, model, runs=max(10, 4 * ctx.repeats))
    if shutil.which("espeak-ng") is None:
        ctx.report.note(STAGE, "espeak-ng is not installed: end-of-turn decisions on speech skipped")
        return
    _decisions(ctx, model)


def _cost(ctx: BenchContext, model, runs: int) -> None:
    import torch

    from sisyphus.bench.asr import speech_audio
    from sisyphus.vad.features import log_mel_features

    audio = speech_audio(8.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the features run on torch: one thread, like the model
    try:
        for _ in range(WARMUP_RUNS):
            model.complete_probability(audio)
        features_ms, model_ms, cpu_ms = [], [], []
        for _ in range(runs):
            started, cpu_started = time.perf_counter(), time.thread_time()
            features = log_mel_features(audio)[np.newaxis]
            middle = time.perf_counter()
            model.infer_features(features)
            features_ms.append((middle - started) * 1000)
            model_ms.append((time.perf_counter() - middle) * 1000)
            cpu_ms.append((time.thread_time() - cpu_started) * 1000)
    finally:
        torch.set_num_threads(threads)
    meta = {"audio_s": 8.0, "threads": 1, "model": model.path.name}
    report = ctx.report
    report.add(STAGE, "per inference", "ms", [f + m for f, m in zip(features_ms, model_ms)],
               "features + model on 8 s of speech, 1 thread; target ≤ 15 ms", meta=meta)
    # On one thread both run inline on this thread, so its CPU time is their cost on an idle core.
    report.add(STAGE, "per inference, CPU time", "ms", cpu_ms,
               "this thread's CPU time: the cost without other processes competing", meta=meta)
    report.add(STAGE, "features", "ms", features_ms, "Whisper log-mel (80 × 800) on torch", meta=meta)
    report.add(STAGE, "model", "ms", model_ms, "int8 ONNX on onnxruntime", meta=meta)


def _decisions(ctx: BenchContext, model) -> None:
    from sisyphus.vad.endpointer import Endpointer, load_silero_model

    config = dataclasses.replace(ctx.config.vad, turn_model="smart-turn", preempt_silence_ms=None)
    silero = load_silero_model()
    outcomes = {}
    for kind, texts in (("finished", FINISHED), ("trailing off", TRAILING)):
        outcomes[kind] = [_end_of_turn(Endpointer(config, model=silero, turn_model=model), text) for text in texts]
    finished, trailing = outcomes["finished"], outcomes["trailing off"]
    meta = {"complete_silence_ms": config.complete_silence_ms, "incomplete_silence_ms": config.incomplete_silence_ms,
            "texts": list(FINISHED)}
    ctx.report.add(STAGE, "end-of-turn delay, finished", "ms", [d.silence_ms for d in finished],
                   f"silence waited; mean {np.mean([d.silence_ms for d in finished]):.0f} ms", meta=meta)
    ctx.report.add(STAGE, "end-of-turn delay, trailing off", "ms", [d.silence_ms for d in trailing],
                   f"silence waited; mean {np.mean([d.silence_ms for d in trailing]):.0f} ms",
                   meta={**meta, "texts": list(TRAILING)})
    short = [d.reason == "complete" for d in finished]
    cut = [text for text, d in zip(TRAILING, trailing) if d.reason == "complete"]
    ctx.report.note(STAGE, f"finished sentences ended after the short silence: {sum(short)}/{len(finished)}; "
                           f"trailing-off ones cut off there: {len(cut)}/{len(trailing)}"
                           + (f" ({'; '.join(cut)})" if cut else ""))
    ctx.report.note(STAGE, "espeak-ng speech (en-us, 160 wpm) with silence after it, through Silero + Smart Turn")


def _end_of_turn(endpointer, text: str):
    """The decision that ended the turn of `text` followed by silence."""
    audio = np.concatenate([np.zeros(int(LEAD_S * MIC_RATE_HZ), np.float32), espeak(text),
                            np.zeros(int(AFTER_S * MIC_RATE_HZ), np.float32)])
    block = 512
    for start in range(0, audio.size - block + 1, block):
        for event in endpointer.push(audio[start : start + block], (start + block) / MIC_RATE_HZ):
            if isinstance(event, Utterance) and event.final:
                return event.decision
    raise RuntimeError(f"the endpointer found no turn in espeak-ng's {text!r}")


def espeak(text: str) -> np.ndarray:
    """`text` spoken by espeak-ng (en-us, 160 words per minute) at 16 kHz, float32."""
    import soundfile as sf
    import soxr

    wav = subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "--stdout", text], check=True,
                         capture_output=True).stdout
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=False)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    return soxr.resample(audio, rate, MIC_RATE_HZ).astype(np.float32)
