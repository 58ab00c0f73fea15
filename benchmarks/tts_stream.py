"""Streaming Qwen3-TTS (Sisyphus) against the reference qwen-tts one-shot generation.

What a listener waits for: with the reference package the first sound is the finished
utterance; with Sisyphus it is the first streamed chunk. Both sides load the same random
CustomVoice checkpoint (official layout and shapes unless --shrink), speak the same text
with the same speaker, greedily, for exactly --frames codec frames (random weights never
stop by themselves), with the same thread count, each in its own process (the reference
needs transformers 4.57.3, Sisyphus transformers 5). Each side loads and warms up once;
only the generation call is timed, inside the worker. Repeats alternate between the two
sides (and alternate which goes first), so a noisy shared machine hits both alike.

    python benchmarks/tts_stream.py --shrink                   # seconds, smoke test
    python benchmarks/tts_stream.py --size 0b6 --repeats 3     # real 0.6B shapes
    python benchmarks/tts_stream.py --size 1b7 --frames 16     # real 1.7B, CPU: fewer frames
    python benchmarks/tts_stream.py --size 1b7 --device cuda --dtype bf16
    python benchmarks/tts_stream.py --ours-only --device cuda --dtype bf16   # offline: no reference env

`--ours-only` never builds or starts the reference environment (it needs the network):
Sisyphus's side alone, the same lines and JSON, without the comparison.

Targets: on a CPU, reference total / Sisyphus first audio >= 5 and Sisyphus per-frame
cost / reference per-frame cost <= 1; on a GPU (1.7B, bf16), audible first audio (the first
sample above -50 dBFS, as a speaker plays it) <= 25 ms and real-time factor <= 0.08.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sisyphus.tts.qwen3 import Qwen3TTS

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
REF_WORKER = HERE / "_ref_tts_oneshot.py"
PREFIX = "@@bench "
FRAME_RATE_HZ = 12.5
TEXT = "Hello world, this is a test of the streaming voice, spoken for about five seconds."
FIRST_AUDIO_RATIO_TARGET = 5.0  # reference total / Sisyphus first audio, at least
PER_FRAME_RATIO_TARGET = 1.0  # Sisyphus per-frame / reference per-frame, at most
GPU_AUDIBLE_MS_TARGET = 25.0  # issue 9: audible first audio <= 25 ms after the phrase arrives
GPU_RTF_TARGET = 0.08


# ---------------------------------------------------------------- the Sisyphus worker


def emit(payload: dict) -> None:
    sys.stdout.write(PREFIX + json.dumps(payload) + "\n")
    sys.stdout.flush()


def peak_rss_mb() -> float:
    from sisyphus.bench.memory import peak_rss_bytes

    return peak_rss_bytes() / 2**20


def speak_ours(model: Qwen3TTS, args: argparse.Namespace) -> dict:
    """One timed streamed utterance; the chunks are host arrays, so no device sync is missing."""
    import numpy as np
    import torch

    from sisyphus.tts.audible import AudibleTimer

    start = time.perf_counter()
    audible = AudibleTimer(model.sample_rate_hz, start)
    chunks = model.stream(args.text, args.speaker, language=args.language, greedy=True,
                          first_chunk_frames=args.first_chunk_frames, chunk_frames=args.chunk_frames,
                          max_frames=args.frames, min_frames=args.frames)
    first_s, samples = None, 0
    for chunk in chunks:
        now = time.perf_counter()
        if first_s is None:
            first_s = now - start
        audible.add(chunk, now)
        samples += len(chunk)
    total_s = time.perf_counter() - start
    codes = model.last_codes.to(dtype=torch.long).contiguous().numpy().astype(np.int64)
    return {"first_audio_s": first_s, "audible_first_audio_s": audible.audible_s, "total_s": total_s,
            "frames": int(model.last_stats.frames), "audio_s": samples / model.sample_rate_hz, "codes_sha1": hashlib.sha1(codes.tobytes()).hexdigest(),
            "peak_rss_mb": peak_rss_mb()}


def ours_worker(args: argparse.Namespace) -> None:
    import torch
    import transformers

    from sisyphus.tts.qwen3 import Qwen3TTS

    torch.set_num_threads(args.threads)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    start = time.perf_counter()
    model = Qwen3TTS.from_pretrained(str(args.folder), device=args.device, dtype=dtype)
    load_s = time.perf_counter() - start
    model.warmup()  # what talk does at load: on CUDA this captures the frame-step graphs
    warm = speak_ours(model, args)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else cpu_name()
    from sisyphus.runtime import fastpath

    emit({"event": "ready", "load_s": load_s, "warmup_s": warm["total_s"], "torch": torch.__version__,
          "fast_paths": [p.describe() for p in fastpath.states().values()],
          "transformers": transformers.__version__, "threads": torch.get_num_threads(),
          "device_name": device_name})
    for line in sys.stdin:
        if line.strip() != "run":
            break
        emit({"event": "result", **speak_ours(model, args)})


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


# ---------------------------------------------------------------- the driver


class Worker:
    """One model in one process, driven by "run" lines; results come back as JSON lines."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.cmd, self.env, self.log = name, cmd, env, log
        self.proc: subprocess.Popen | None = None
        self.ready: dict | None = None

    def start(self) -> dict:
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                         text=True, env=self.env, cwd=REPO)
        self.ready = self._read("ready")
        return self.ready

    def run(self) -> dict:
        if self.proc is None:
            self.start()
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return self._read("result")

    def close(self) -> None:
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def _read(self, event: str) -> dict:
        for line in self.proc.stdout:
            if line.startswith(PREFIX):
                payload = json.loads(line[len(PREFIX):])
                if payload.get("event") == event:
                    return payload
        self.proc.wait()
        tail = self.log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{self.name} worker exited ({self.proc.returncode}) before '{event}'; "
                           f"log {self.log}:\n{tail}")


def ensure_checkpoint(cache: Path, size: str, shrink: bool, seed: int) -> Path:
    """Write one random CustomVoice folder (talker + speech tokenizer) once; reuse it after."""
    name = f"custom_voice-{size}-{'shrunk' if shrink else 'full'}-seed{seed}"
    folder = cache / name
    if (folder / ".complete").exists():
        return folder
    from sisyphus.tts.qwen3.synthetic import write_random_tts

    partial = cache / f"{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    # Full-size weights are written in bf16 as the official ones are; fp32 runs upcast them on both sides.
    write_random_tts(partial, "custom_voice", size, "tiny" if shrink else "full", seed=seed)
    (partial / ".complete").write_text("")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder


def make_workers(args: argparse.Namespace, folder: Path, logs: Path) -> list[Worker]:
    """Sisyphus's worker, then (unless --ours-only) the reference's, whose venv is built on first use."""
    threads = str(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    common = ["--text", args.text, "--speaker", args.speaker, "--language", args.language,
              "--frames", str(args.frames), "--device", args.device, "--dtype", args.dtype, "--threads", threads]
    ours_cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "ours", "--folder", str(folder),
                "--first-chunk-frames", str(args.first_chunk_frames), "--chunk-frames", str(args.chunk_frames),
                *common]
    ours_path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    workers = [Worker("sisyphus", ours_cmd, dict(env, PYTHONPATH=ours_path), logs / "sisyphus.log")]
    if args.ours_only:
        return workers
    sys.path.insert(0, str(REPO))
    from tests.oracle.refenv import reference_python

    ref_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    ref_cmd = [str(reference_python()), str(REF_WORKER), str(folder), *common]
    return [*workers, Worker("reference", ref_cmd, ref_env, logs / "reference.log")]


def start(worker: Worker) -> None:
    ready = worker.start()
    extra = f", warm-up {ready['warmup_s']:.3f} s" if "warmup_s" in ready else ""
    paths = f"; fast paths: {'; '.join(ready['fast_paths'])}" if ready.get("fast_paths") else ""
    print(f"  {worker.name} ready: load {ready.get('load_s', float('nan')):.1f} s{extra}, "
          f"torch {ready.get('torch')}, transformers {ready.get('transformers')}{paths}", flush=True)


def measure(args: argparse.Namespace, workers: list[Worker], isolate: bool) -> dict[str, list[dict]]:
    """Alternate the sides; with `isolate` only one model is in memory at any time."""
    runs: dict[str, list[dict]] = {w.name: [] for w in workers}
    try:
        if not isolate:
            for w in workers:
                start(w)
        for repeat in range(args.repeats):
            for w in workers if repeat % 2 == 0 else workers[::-1]:
                if w.proc is None:
                    start(w)
                result = dict(w.run(), load_avg_1min=os.getloadavg()[0])
                runs[w.name].append(result)
                print(f"  repeat {repeat + 1}/{args.repeats} {w.name:9s}: total {result['total_s']:.3f} s"
                      f"{_first_audio_text(result)}  (machine load avg {result['load_avg_1min']:.1f})", flush=True)
                if isolate:
                    w.close()
    finally:
        for w in workers:
            w.close()
    return runs


def _first_audio_text(result: dict) -> str:
    if "first_audio_s" not in result:
        return ""
    audible = result.get("audible_first_audio_s")
    heard = "never above -50 dBFS" if audible is None else f"{audible * 1000:.0f} ms"
    return f", first audio {result['first_audio_s'] * 1000:.0f} ms, audible {heard}"


def med(values: list[float]) -> float:
    return statistics.median(values)


def summarize(args: argparse.Namespace, runs: dict[str, list[dict]]) -> dict:
    ours = runs["sisyphus"]
    o_first = [r["first_audio_s"] for r in ours]
    o_total = [r["total_s"] for r in ours]
    o_frame = [r["total_s"] / r["frames"] for r in ours]
    heard = [r["audible_first_audio_s"] for r in ours if r.get("audible_first_audio_s") is not None]
    summary = {
        "sisyphus": {"first_audio_ms": med(o_first) * 1e3, "total_s": med(o_total),
                     "audible_first_audio_ms": med(heard) * 1e3 if heard else None,
                     "silent_replies": len(ours) - len(heard),
                     "per_frame_ms": med(o_frame) * 1e3, "rtf": med([r["total_s"] / r["audio_s"] for r in ours]),
                     "frames": ours[0]["frames"], "audio_s": ours[0]["audio_s"],
                     "peak_rss_mb": max(r["peak_rss_mb"] for r in ours)},
    }
    if "reference" in runs:
        summary.update(_compare(runs["reference"], o_first, o_frame, ours))
    return summary


def _compare(ref: list[dict], o_first: list[float], o_frame: list[float], ours: list[dict]) -> dict:
    """The reference's row and the paired ratios."""
    r_total = [r["total_s"] for r in ref]
    r_frame = [r["total_s"] / r["frames"] for r in ref]
    return {
        "reference": {"first_audio_ms": med(r_total) * 1e3, "total_s": med(r_total),
                      "per_frame_ms": med(r_frame) * 1e3, "rtf": med([r["total_s"] / r["audio_s"] for r in ref]),
                      "generate_s": med([r["generate_s"] for r in ref]), "decode_s": med([r["decode_s"] for r in ref]),
                      "frames": ref[0]["frames"], "audio_s": ref[0]["audio_s"],
                      "peak_rss_mb": max(r["peak_rss_mb"] for r in ref)},
        # Paired per repeat (neighbouring runs see the same machine load), then the median.
        "first_audio_ratio": med([rt / of for rt, of in zip(r_total, o_first)]),
        "per_frame_ratio": med([of / rf for of, rf in zip(o_frame, r_frame)]),
        "codes_identical": len({r["codes_sha1"] for r in ours + ref}) == 1,
    }


def report(args: argparse.Namespace, info: dict, s: dict) -> None:
    o, r = s["sisyphus"], s.get("reference")
    print()
    print(f"model     : {info['model']}  ({info['folder']})")
    mode = "Sisyphus only" if r is None else ("one model at a time" if info["isolate"] else "both resident")
    print(f"device    : {args.device} — {info['device_name']}   dtype: {args.dtype}   threads: {args.threads}"
          f"   mode: {mode}")
    ref_versions = "" if r is None else \
        f", reference {info['ref']['torch']} (transformers {info['ref']['transformers']})"
    print(f"torch     : sisyphus {info['ours']['torch']} (transformers {info['ours']['transformers']}){ref_versions}")
    print(f"fast paths: {'; '.join(info['ours'].get('fast_paths') or ['none reported'])}")
    same = "" if r is None else f"; codes identical on both sides: {'yes' if s['codes_identical'] else 'no'}"
    print(f"utterance : {o['frames']} frames = {o['audio_s']:.2f} s of audio, greedy, {args.repeats} repeats "
          f"(median), chunks {args.first_chunk_frames}+{args.chunk_frames}n frames{same}")
    print()
    print(f"{'':22s}{'first audio ms':>15s}{'audible ms':>11s}{'total s':>10s}{'per frame ms':>14s}{'RTF':>8s}"
          f"{'peak RSS MB':>13s}")
    for name, row in (("sisyphus (stream)", o), ("reference (one-shot)", r)):
        if row is None:
            continue
        audible = row.get("audible_first_audio_ms", row["first_audio_ms"])  # one-shot: heard when it is done
        print(f"{name:22s}{row['first_audio_ms']:15.0f}{_ms(audible):>11s}{row['total_s']:10.3f}"
              f"{row['per_frame_ms']:14.1f}{row['rtf']:8.3f}{row['peak_rss_mb']:13.0f}")
    if o["silent_replies"]:
        print(f"{'':22s}{o['silent_replies']} of {args.repeats} replies never rose above -50 dBFS")
    if r is not None:
        print(f"{'':22s}reference split: generate {r['generate_s']:.3f} s + decode {r['decode_s']:.3f} s")
        print()
        ok1 = s["first_audio_ratio"] >= FIRST_AUDIO_RATIO_TARGET
        ok2 = s["per_frame_ratio"] <= PER_FRAME_RATIO_TARGET
        print(f"reference total / sisyphus first audio : {s['first_audio_ratio']:6.2f}x  "
              f"(target >= {FIRST_AUDIO_RATIO_TARGET:g}x: {'met' if ok1 else 'NOT met'})")
        print(f"sisyphus per-frame / reference per-frame: {s['per_frame_ratio']:6.2f}   "
              f"(target <= {PER_FRAME_RATIO_TARGET:g}: {'met' if ok2 else 'NOT met'})")
    if args.device.startswith("cuda"):
        audible = o["audible_first_audio_ms"]
        ok3 = audible is not None and audible <= GPU_AUDIBLE_MS_TARGET and o["rtf"] <= GPU_RTF_TARGET
        print(f"GPU target (1.7B bf16): audible first audio <= {GPU_AUDIBLE_MS_TARGET:g} ms and RTF <= "
              f"{GPU_RTF_TARGET:g}: {'met' if ok3 else 'NOT met'}")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=["0b6", "1b7"], default="1b7")
    p.add_argument("--shrink", action="store_true", help="tiny layer counts/widths (smoke test, seconds)")
    p.add_argument("--frames", type=int, default=63, help="codec frames per utterance (63 = 5.04 s)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                   help="torch / OpenMP threads, the same on both sides")
    p.add_argument("--first-chunk-frames", type=int, default=2)
    p.add_argument("--chunk-frames", type=int, default=4)
    p.add_argument("--text", default=TEXT)
    p.add_argument("--speaker", default="vivian")
    p.add_argument("--language", default="english")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    p.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "sisyphus" / "bench",
                   help="where the random checkpoints are written once and reused")
    p.add_argument("--isolate", choices=["auto", "yes", "no"], default="auto",
                   help="one model in memory at a time (reload per repeat); auto: yes for the full 1.7B on CPU")
    p.add_argument("--json", type=Path, help="also write config, raw runs and summary here")
    p.add_argument("--ours-only", action="store_true",
                   help="Sisyphus's side only: never builds or starts the reference environment (offline machines)")
    p.add_argument("--folder", type=Path,
                   help="an existing CustomVoice checkpoint folder instead of writing a random one")
    p.add_argument("--worker", choices=["ours"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.frames < 2 or args.repeats < 1 or args.threads < 1:
        p.error("--frames must be >= 2, --repeats and --threads >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker == "ours":
        if args.folder is None:
            raise SystemExit("--worker needs --folder")
        ours_worker(args)
        return
    args.cache.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    folder = args.folder or ensure_checkpoint(args.cache, args.size, args.shrink, args.seed)
    print(f"checkpoint: {folder} ({time.perf_counter() - t:.1f} s)", flush=True)
    isolate = args.isolate == "yes" or (args.isolate == "auto" and args.size == "1b7" and not args.shrink
                                        and args.device == "cpu")
    logs = args.cache / "logs"
    logs.mkdir(exist_ok=True)
    workers = make_workers(args, folder, logs)
    try:
        runs = measure(args, workers, isolate)
    except RuntimeError as err:  # a worker died: its log tail says why
        raise SystemExit(f"error: {err}") from None
    model = f"Qwen3-TTS-12Hz-{'1.7B' if args.size == '1b7' else '0.6B'}-CustomVoice, random weights" \
            + (", shrunk" if args.shrink else ", official shapes")
    if args.folder is not None:
        model = f"the checkpoint in {args.folder.name}"
    ready = {w.name: w.ready for w in workers}
    info = {"model": model, "folder": str(folder), "isolate": isolate, "ours": ready["sisyphus"],
            "ref": ready.get("reference"), "device_name": ready["sisyphus"]["device_name"]}
    summary = summarize(args, runs)
    report(args, info, summary)
    if args.json:
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        args.json.write_text(json.dumps({"config": config, "info": info, "runs": runs, "summary": summary},
                                        indent=2))


if __name__ == "__main__":
    main()
