"""Where the time of one GLM-ASR transcription goes: `asr_generate.py --breakdown`.

The engine's path, stage by stage, each stage synchronised with the device before and
after so GPU work is charged to the stage that queued it:

- features:   the processor's WhisperFeatureExtractor alone (log-mel on the CPU, the audio
              padded to the 30 s window the model was trained on);
- processor:  the whole `apply_transcription_request` (features + chat template + tokenizer);
- to device:  `inputs.to(device, dtype)`;
- encoder:    `get_audio_features` (audio encoder on the 3000-frame window + projector);
- prefill:    the fast path's prefill (encoder again + language model over the prompt + copy
              into the static cache); "prefill less encoder" is the language model's share;
- decode:     per generated token, the decoder step the engine uses (compiled on CUDA),
              reading each id back as the real loop does;
- whole call: `engine.generate_ids` end to end, for comparison with the sum.

And the alternatives that could cut the fixed cost, timed beside them with how far their
output is from the official one:

- features on the device: the same feature extractor with its `device=` option (the
  official torch code run on the GPU); max |difference| against the CPU features;
- encoder as a CUDA graph: the same eager kernels captured once and replayed (CUDA only);
  whether its output is bitwise equal. The engine's fast path does this already
  (sisyphus/asr/encoder.py): "encoder" above is the eager figure, while "prefill" and
  the whole call use the graph where the fast path has it (the row's `prefill_encoder`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from sisyphus.asr.encoder import encoder_and_projector
from sisyphus.frames import MIC_RATE_HZ


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def timed_ms(device: str, fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median milliseconds of `fn` over `repeats` synchronised runs (one untimed run first), and its last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        started = time.perf_counter()
        result = fn()
        _sync(device)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def _features(processor: Any, audio: np.ndarray, device: str = "cpu") -> Any:
    """The feature extractor as GlmAsrProcessor calls it for one window of audio."""
    return processor.feature_extractor(
        [audio], sampling_rate=MIC_RATE_HZ, return_attention_mask=True, return_tensors="pt", device=device
    )


def _decode_ms(engine: Any, fast: Any, inputs: dict, tokens: int, repeats: int) -> float:
    """Milliseconds per decode step after a prefill, each id read back as the engine's loop does."""
    prompt_len = int(inputs["input_ids"].shape[1])
    steps = max(1, min(tokens, fast.max_cache_len - prompt_len) - 1)

    def run() -> None:
        fast._start(inputs, prompt_len)
        fast._end_bias.copy_(fast._ban_end)
        _sync(engine.device)
        started = time.perf_counter()
        for _ in range(steps):
            token, _ = fast._next()
            fast._token.copy_(token)
            int(fast._token)
        _sync(engine.device)
        times.append((time.perf_counter() - started) * 1000 / steps)

    times: list[float] = []
    with torch.inference_mode():
        run_on(fast, run)  # warm
        times.clear()
        for _ in range(repeats):
            run_on(fast, run)
    return statistics.median(times)


def run_on(fast: Any, fn: Callable[[], Any]) -> Any:
    """On the decoder's own thread where it has one (CUDA graph trees are per thread)."""
    if fast._thread is None:
        return fn()
    return fast._thread.submit(fn).result()


def _encoder_graph_ms(engine: Any, inputs: dict, repeats: int) -> tuple[float | None, bool | None]:
    """The encoder + projector captured as one CUDA graph: replay time and bitwise equality with eager."""
    if not engine.device.startswith("cuda"):
        return None, None
    model = engine.model
    encode = encoder_and_projector(model)
    features = inputs["input_features"].clone()
    with torch.inference_mode():
        eager = model.get_audio_features(features, inputs["input_features_mask"], return_dict=True).pooler_output
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                encode(features)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                hidden = encode(features)
        except Exception as exc:  # noqa: BLE001 - a benchmark reports, it does not stop
            print(f"  encoder CUDA graph capture failed: {str(exc).splitlines()[0][:160]}")
            return None, None
        ms, _ = timed_ms(engine.device, graph.replay, repeats)
        same = bool(torch.equal(hidden[0, : eager.shape[0]], eager))
    return ms, same


def breakdown(engine: Any, audio: np.ndarray, tokens: int, repeats: int) -> dict[str, Any]:
    """The stage timings (ms) of one utterance, and the alternatives' timings and fidelity."""
    device, processor = engine.device, engine.processor
    fast = engine._fast
    decoder = "fast path" if fast is not None else "static cache, eager (the fast path is off)"
    if fast is None:
        fast = engine._build_fast(compiled=False)
    row: dict[str, Any] = {"audio_s": round(len(audio) / MIC_RATE_HZ, 2), "tokens": tokens, "decoder": decoder}
    with torch.inference_mode():
        row["features_ms"], cpu_features = timed_ms("cpu", lambda: _features(processor, audio), repeats)
        row["processor_ms"], inputs = timed_ms("cpu", lambda: processor.apply_transcription_request(audio), repeats)
        row["to_device_ms"], on_device = timed_ms(device, lambda: inputs.to(device, dtype=engine.dtype), repeats)
        inputs = dict(on_device)
        row["prompt_tokens"] = int(inputs["input_ids"].shape[1])
        row["encoder_ms"], _ = timed_ms(
            device,
            lambda: engine.model.get_audio_features(inputs["input_features"], inputs["input_features_mask"]),
            repeats,
        )
        prompt_len = row["prompt_tokens"]
        row["prefill_ms"], _ = timed_ms(device, lambda: run_on(fast, lambda: fast._start(inputs, prompt_len)), repeats)
    row["decode_ms_per_token"] = _decode_ms(engine, fast, inputs, tokens, repeats)
    row["whole_call_ms"], _ = timed_ms(device, lambda: engine.generate_ids(audio, tokens, tokens), repeats)
    row["sum_of_stages_ms"] = (
        row["processor_ms"] + row["to_device_ms"] + row["prefill_ms"] + row["decode_ms_per_token"] * (tokens - 1)
    )
    if device.startswith("cuda"):
        with torch.inference_mode():
            row["features_on_device_ms"], gpu = timed_ms(device, lambda: _features(processor, audio, device), repeats)
        row["features_on_device_max_abs_diff"] = float(
            (torch.as_tensor(gpu["input_features"]) - torch.as_tensor(cpu_features["input_features"])).abs().max()
        )
    row["encoder_graph_ms"], row["encoder_graph_bitwise_equal"] = _encoder_graph_ms(engine, inputs, repeats)
    graph_in_prefill = getattr(fast, "encoder", None) is not None and fast.encoder.graph is not None
    row["prefill_encoder"] = "CUDA graph" if graph_in_prefill else "eager"
    encoder_share = row["encoder_graph_ms"] if graph_in_prefill and row["encoder_graph_ms"] else row["encoder_ms"]
    row["prefill_less_encoder_ms"] = row["prefill_ms"] - encoder_share
    if fast is not engine._fast:
        fast.close()
    return row


STAGES = (
    ("features_ms", "features (CPU)"),
    ("processor_ms", "processor (features + template + tokens)"),
    ("to_device_ms", "host to device"),
    ("encoder_ms", "encoder + projector"),
    ("prefill_ms", "prefill (encoder + LM + cache copy)"),
    ("prefill_less_encoder_ms", "  of which LM prefill + copy"),
    ("decode_ms_per_token", "decode, per token"),
    ("sum_of_stages_ms", "sum (processor + h2d + prefill + decode)"),
    ("whole_call_ms", "whole generate_ids call"),
    ("features_on_device_ms", "alt: features on the device"),
    ("encoder_graph_ms", "alt: encoder as one CUDA graph"),
)


def table(rows: list[dict[str, Any]]) -> str:
    head = "| stage | " + " | ".join(f"{r['audio_s']:g} s ({r['tokens']} tok, {r['prompt_tokens']} prompt)" for r in rows) + " |"
    lines = [head, "|---|" + "---:|" * len(rows)]
    for key, label in STAGES:
        cells = [f"{r[key]:.1f}" if isinstance(r.get(key), float) else "-" for r in rows]
        lines.append(f"| {label} ms | " + " | ".join(cells) + " |")
    notes = []
    for r in rows:
        if r.get("features_on_device_max_abs_diff") is not None:
            notes.append(f"{r['audio_s']:g} s: device features differ from CPU ones by {r['features_on_device_max_abs_diff']:.2e}")
        if r.get("encoder_graph_bitwise_equal") is not None:
            notes.append(f"{r['audio_s']:g} s: encoder graph bitwise equal to eager: {r['encoder_graph_bitwise_equal']}")
    if rows:
        notes.append(f"decoder: {rows[0]['decoder']}; encoder in the prefill: {rows[0]['prefill_encoder']}")
    return "\n".join(lines + [""] + notes)
