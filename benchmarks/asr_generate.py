"""GLM-ASR latency: Sisyphus's GlmAsrEngine against the plain transformers path, side by side.

The plain path is what the model card shows a user: `GlmAsrProcessor.from_pretrained` +
`GlmAsrForConditionalGeneration.from_pretrained`, `processor.apply_transcription_request(audio)`,
`inputs.to(device, dtype)`, `model.generate(**inputs, do_sample=False, max_new_tokens=...)`,
`processor.batch_decode(...)`, with transformers' defaults otherwise (SDPA attention, a
dynamic KV cache grown token by token, no compilation). Sisyphus's side is
`GlmAsrEngine.load(...)` + `warmup()` + `generate_ids` + `decode`: on CUDA the warm-up
builds the static-cache, CUDA-graph decode step; on a CPU it decodes with `generate` too.

Both sides load the same folder in the same process with the same device and dtype,
transcribe the same 2, 5, 10 and 20 s of speech (the packaged espeak-ng clips, looped),
and with random weights are forced to the same transcript length (min_new_tokens =
max_new_tokens = 3.5 tokens per second of audio), so both do the same decode work. Each side warms up first; repeats alternate which side
goes first; the time is the whole call (features, encoder, prefill, decode, detokenise).

    python benchmarks/asr_generate.py                          # random weights, reduced size
    python benchmarks/asr_generate.py --size full --device cuda --dtype bf16 --json asr.json
    python benchmarks/asr_generate.py --model ~/models/GLM-ASR-Nano-2512 --device cuda

Target (issue 5, H100, bf16, full size): a 5 s utterance transcribed in <= 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from sisyphus.bench.asr import TOKENS_PER_S, forced_tokens, speech_audio
from sisyphus.bench.stats import timed

DURATIONS_S = (2, 5, 10, 20)
CARD_MAX_NEW_TOKENS = 500  # the model card's generate call, used with real weights
TARGET_5S_MS = 100.0


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def load_average() -> float:
    return os.getloadavg()[0]


# ---------------------------------------------------------------- inputs


AUDIO = "the packaged espeak-ng clips (sisyphus/bench/clips), looped with 0.3 s gaps"


def checkpoint(args: argparse.Namespace) -> tuple[Path, bool]:
    """The folder to load and whether its weights are random."""
    if args.model:
        return Path(args.model).expanduser(), False
    from sisyphus.asr.synthetic import write_random_glmasr

    folder = Path(args.cache).expanduser() / f"asr-{args.size}"
    if not (folder / "config.json").is_file():
        say(f"writing random {args.size} GLM-ASR weights to {folder} ...")
        write_random_glmasr(folder, args.size)
    return folder, True


# ---------------------------------------------------------------- the two sides


def load_ours(folder: Path, device: str, dtype: Any, decode: str) -> Any:
    from sisyphus.asr.glm import GlmAsrEngine

    engine = GlmAsrEngine.load(str(folder), device=device, dtype=dtype, decode=decode)
    engine.warmup()
    return engine


def ours_call(engine: Any, audio: np.ndarray, tokens: int | None) -> list[int]:
    ids = engine.generate_ids(audio, max_new_tokens=tokens, min_new_tokens=tokens)
    engine.decode(ids)
    return ids


def load_plain(folder: Path, device: str, dtype: Any) -> tuple[Any, Any]:
    """As the model card loads it (dtype and device made the same as ours)."""
    from transformers import GlmAsrForConditionalGeneration, GlmAsrProcessor

    processor = GlmAsrProcessor.from_pretrained(folder)
    model = GlmAsrForConditionalGeneration.from_pretrained(folder, dtype=dtype).to(device).eval()
    return processor, model


def plain_call(plain: tuple[Any, Any], audio: np.ndarray, tokens: int | None) -> list[int]:
    processor, model = plain
    inputs = processor.apply_transcription_request(audio).to(model.device, dtype=model.dtype)
    length = {"max_new_tokens": tokens, "min_new_tokens": tokens} if tokens else {"max_new_tokens": CARD_MAX_NEW_TOKENS}
    output = model.generate(**inputs, do_sample=False, **length)
    ids = output[0, inputs["input_ids"].shape[1]:]
    processor.batch_decode(ids[None], skip_special_tokens=True)
    return ids.tolist()


# ---------------------------------------------------------------- the run


def measure(args: argparse.Namespace, ours: Any, plain: tuple[Any, Any], random: bool) -> list[dict]:
    rows = []
    for seconds in args.durations:
        audio = speech_audio(seconds)
        tokens = forced_tokens(seconds) if random else None
        sides = {
            "ours": lambda audio=audio, tokens=tokens: ours_call(ours, audio, tokens),
            "plain": lambda audio=audio, tokens=tokens: plain_call(plain, audio, tokens),
        }
        for call in sides.values():  # warm-up at this length, untimed
            call()
        times: dict[str, list[float]] = {"ours": [], "plain": []}
        ids: dict[str, list[list[int]]] = {"ours": [], "plain": []}
        for r in range(args.repeats):
            order = ("ours", "plain") if r % 2 == 0 else ("plain", "ours")
            for side in order:
                seconds_taken, got = timed(args.device, sides[side])
                times[side].append(seconds_taken)
                ids[side].append(got)
        ratios = [p / o for p, o in zip(times["plain"], times["ours"])]
        row = {
            "audio_s": seconds,
            "tokens": [len(i) for i in ids["ours"]][-1],
            "plain_tokens": [len(i) for i in ids["plain"]][-1],
            "ours_ms": [t * 1000 for t in times["ours"]],
            "plain_ms": [t * 1000 for t in times["plain"]],
            "ours_median_ms": statistics.median(times["ours"]) * 1000,
            "plain_median_ms": statistics.median(times["plain"]) * 1000,
            "ratio_plain_over_ours": statistics.median(ratios),
            "ids_identical": all(a == b for a, b in zip(ids["ours"], ids["plain"])),
            "load_average": load_average(),
        }
        rows.append(row)
        say(f"  {seconds:>2} s: ours {row['ours_median_ms']:8.1f} ms   plain {row['plain_median_ms']:8.1f} ms   "
            f"ratio {row['ratio_plain_over_ours']:.2f}   ids identical {row['ids_identical']}   "
            f"load {row['load_average']:.1f}")
    return rows


def run_breakdown(args: argparse.Namespace, engine: Any, random: bool) -> None:
    """`--breakdown`: where the time of one call goes, per stage, for each duration (asr_breakdown.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from asr_breakdown import breakdown, table as breakdown_table

    rows = []
    for seconds in args.durations:
        audio = speech_audio(seconds)
        tokens = forced_tokens(seconds) if random else 32
        rows.append(breakdown(engine, audio, tokens, args.repeats))
        say(f"  {seconds:>2} s: " + ", ".join(f"{k} {v:.1f}" for k, v in rows[-1].items() if isinstance(v, float)))
    say()
    say(breakdown_table(rows))
    if args.json:
        env = environment(args, engine.folder, random, engine.dtype)
        Path(args.json).write_text(json.dumps({"environment": env, "breakdown": rows}, indent=2))
        say(f"wrote {args.json}")


def table(rows: list[dict]) -> str:
    lines = [
        "| audio | tokens | Sisyphus ms | transformers generate ms | plain / ours | ids identical |",
        "|------:|-------:|------------:|-------------------------:|-------------:|:-------------:|",
    ]
    for row in rows:
        tokens = str(row["tokens"]) if row["tokens"] == row["plain_tokens"] else f"{row['tokens']} / {row['plain_tokens']}"
        lines.append(
            f"| {row['audio_s']} s | {tokens} | {row['ours_median_ms']:.1f} | {row['plain_median_ms']:.1f} | "
            f"{row['ratio_plain_over_ours']:.2f} | {'yes' if row['ids_identical'] else 'no'} |"
        )
    return "\n".join(lines)


def environment(args: argparse.Namespace, folder: Path, random: bool, dtype: Any) -> dict:
    import torch
    import transformers

    from sisyphus.runtime import fastpath

    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else cpu_name()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.node()} {device_name}, {os.cpu_count()} CPUs",
        "device": args.device,
        "dtype": str(dtype).replace("torch.", ""),
        "threads": torch.get_num_threads(),
        "decode": args.decode,
        "weights": "random" if random else "real",
        "size": None if args.model else args.size,
        "folder": str(folder),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "fast_paths": {name: state.describe() for name, state in fastpath.states().items()},
        "audio": AUDIO,
        "forced_tokens_per_s": TOKENS_PER_S if random else None,
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "reduced", "full"), default="reduced",
                        help="random-weight checkpoint size (ignored with --model)")
    parser.add_argument("--model", help="a folder with real GLM-ASR-Nano-2512 weights")
    parser.add_argument("--cache", default="~/.cache/sisyphus/bench", help="where random weights are written")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--dtype", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    parser.add_argument("--decode", default="auto", choices=("auto", "plain", "static", "compiled"),
                        help="Sisyphus's decoder (default auto: the fast path where it runs)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--durations", type=lambda s: [int(x) for x in s.split(",")], default=list(DURATIONS_S))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--breakdown", action="store_true",
                        help="time Sisyphus's stages (features, host to device, encoder, prefill, per-token decode) "
                             "and the alternatives (features on the device, encoder as a CUDA graph) instead")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    import logging

    import torch

    from sisyphus.runtime.device import pick_dtype

    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("sisyphus.runtime.fastpath").setLevel(logging.INFO)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = pick_dtype(args.device, args.dtype)
    folder, random = checkpoint(args)
    say(f"loading {folder} on {args.device} in {dtype} (load average {load_average():.1f})")
    ours = load_ours(folder, args.device, dtype, args.decode)
    if args.breakdown:
        run_breakdown(args, ours, random)
        return
    plain = load_plain(folder, args.device, dtype)
    started = time.perf_counter()
    rows = measure(args, ours, plain, random)
    env = environment(args, folder, random, dtype)
    say()
    say(table(rows))
    say()
    for key in ("date", "machine", "device", "dtype", "threads", "decode", "weights", "size", "torch", "transformers", "audio"):
        say(f"{key}: {env[key]}")
    for line in env["fast_paths"].values():
        say(f"fast path {line}")
    say(f"measured in {time.perf_counter() - started:.0f} s; load average at the end {load_average():.1f}")
    five = next((r for r in rows if r["audio_s"] == 5), None)
    if five and args.device.startswith("cuda"):
        met = "met" if five["ours_median_ms"] <= TARGET_5S_MS else "NOT met"
        say(f"target: 5 s utterance <= {TARGET_5S_MS:.0f} ms: {five['ours_median_ms']:.1f} ms ({met})")
    if args.json:
        Path(args.json).write_text(json.dumps({"environment": env, "rows": rows}, indent=2))
        say(f"wrote {args.json}")


if __name__ == "__main__":
    main()
