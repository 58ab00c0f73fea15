"""Kernels per frame step of the Qwen3-TTS runtime: the CPU proxy for its CUDA-graph cost.

On a GPU the graphed frame step (talker decode step + 15 code-predictor steps) is bound by
the number of kernels it launches, not by the bytes of weights it reads: each costs a few
microseconds even inside a graph. This counts the aten ops one step dispatches (each is
about one CUDA kernel; pure views and allocations are not counted, composites such as
linear and SDPA count as the ops they run), split into the talker,
the code predictor and the rest (sampling, embeddings, copies), and times the step on the
CPU. Widths are tiny, depths official (28 talker, 5 predictor layers on 1.7B), so the
counts are those of the real model and the run takes seconds.

SDPA runs as the math backend by default (`--sdpa math`): that is what CUDA runs for
grouped-query attention with a mask (the flash backend takes no mask, the efficient one
no GQA), while the CPU has a fused kernel that would hide those kernels (`--sdpa cpu`).

    python benchmarks/tts_step_ops.py                        # this tree
    python benchmarks/tts_step_ops.py --baseline /tmp/main   # and another tree, side by side
    python benchmarks/tts_step_ops.py --size 0b6 --json ops.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from typing import Any

SKIP = {"aten._unsafe_view.default", "aten.empty.memory_format", "aten.empty_strided.default",
        "aten.empty_like.default", "aten.lift_fresh.default"}  # no kernel: a view or an allocation


def build_talker(size: str, shrink_depth: bool) -> Any:
    """A random talker with tiny widths and (unless shrink_depth) the official depths."""
    import torch

    from sisyphus.tts.qwen3.checkpoint import build_net, random_state_dict
    from sisyphus.tts.qwen3.config import parse_model_config
    from sisyphus.tts.qwen3.layers import Rotary
    from sisyphus.tts.qwen3.synthetic import official_files, shrink_config

    raw = official_files("custom_voice", size)["config.json"]
    t = raw["talker_config"]
    layers = {} if shrink_depth else {"talker_layers": t["num_hidden_layers"],
                                      "predictor_layers": t["code_predictor_config"]["num_hidden_layers"]}
    cfg = parse_model_config(shrink_config(raw, **layers))
    net = build_net(cfg, "cpu")
    net.talker.load_state_dict({k[len("talker."):]: v for k, v in random_state_dict(cfg, 0).items()
                                if k.startswith("talker.")})
    for module in net.modules():
        if isinstance(module, Rotary):
            module.reset("cpu")
    return net.talker.eval()


class OpCounter:
    """Counts kernel-launching aten ops, attributed to the innermost open section."""

    def __init__(self, keep: set[str]) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        counter = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
                name = str(func)
                if name not in counter.keep:  # composites (linear, SDPA) into what they run
                    with self:
                        out = func.decompose(*args, **(kwargs or {}))
                    if out is not NotImplemented:
                        return out
                if not func.is_view and name not in SKIP:
                    counter.counts[counter.section][name] += 1
                return func(*args, **(kwargs or {}))

        self.keep = keep
        self.mode = Mode()
        self.section = "rest"
        self.counts: dict[str, Counter[str]] = {"talker": Counter(), "predictor": Counter(), "rest": Counter()}

    @contextlib.contextmanager
    def within(self, section: str):  # noqa: ANN201
        before, self.section = self.section, section
        try:
            yield
        finally:
            self.section = before


def wrap(obj: Any, method: str, counter: OpCounter, section: str) -> None:
    inner = getattr(obj, method)

    def counted(*args: Any, **kwargs: Any) -> Any:
        with counter.within(section):
            return inner(*args, **kwargs)

    setattr(obj, method, counted)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from sisyphus.tts.qwen3.config import SamplingConfig
    from sisyphus.tts.qwen3.generator import FrameGenerator

    torch.set_num_threads(1)
    talker = build_talker(args.size, args.shrink_depth)
    hidden = talker.cfg.hidden_size
    gen = torch.Generator().manual_seed(0)
    prefill = torch.randn(1, args.prompt, hidden, generator=gen)
    trailing = torch.randn(1, 4, hidden, generator=gen)
    pad = torch.randn(hidden, generator=gen)
    frames = args.warmup + args.steps + 1
    backends = [SDPBackend.MATH] if args.sdpa == "math" else [SDPBackend.FLASH_ATTENTION, SDPBackend.MATH]
    with sdpa_kernel(backends):
        fg = FrameGenerator(talker, prefill, trailing, pad, SamplingConfig(), max_frames=frames, seed=0)
        for _ in range(args.warmup):
            fg.step()
        counter = OpCounter({"aten.rms_norm.default"} if args.fused_rms_norm else set())
        wrap(talker, "forward_embeds", counter, "talker")
        wrap(talker.code_predictor, "predict", counter, "predictor")
        with counter.mode:
            fg.step()
        del talker.forward_embeds, talker.code_predictor.predict
        times = []
        for _ in range(args.steps):
            started = time.perf_counter()
            fg.step()
            times.append((time.perf_counter() - started) * 1000)
    ops = {k: sum(c.values()) for k, c in counter.counts.items()}
    return {"ops_per_step": sum(ops.values()), "ops": ops, "cpu_ms_per_step": statistics.median(times),
            "top_ops": dict((counter.counts["talker"] + counter.counts["predictor"]).most_common(12)),
            "talker_layers": talker.cfg.num_layers, "predictor_layers": talker.cfg.predictor.num_layers,
            "torch": torch.__version__, "sdpa": args.sdpa,
            "fused_rms_norm": args.fused_rms_norm}


def child_args(args: argparse.Namespace) -> list[str]:
    out = ["--size", args.size, "--steps", str(args.steps), "--warmup", str(args.warmup), "--prompt",
           str(args.prompt), "--sdpa", args.sdpa]
    return out + [flag for flag, on in (("--shrink-depth", args.shrink_depth),
                                         ("--fused-rms-norm", args.fused_rms_norm)) if on]


def run_tree(tree: str, args: argparse.Namespace) -> dict[str, Any]:
    """The measurement in a fresh process importing `sisyphus` from `tree`."""
    env = dict(os.environ, PYTHONPATH=tree, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", *child_args(args)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def show(label: str, r: dict[str, Any]) -> None:
    o = r["ops"]
    print(f"{label:>8}: {r['ops_per_step']:5d} ops/step (talker {o['talker']}, predictor {o['predictor']}, "
          f"rest {o['rest']}), {r['cpu_ms_per_step']:.2f} CPU ms/step")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("1b7", "0b6"), default="1b7")
    ap.add_argument("--shrink-depth", action="store_true", help="the tests' 2+2 layers instead of official depths")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per round")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--prompt", type=int, default=24, help="prefill length")
    ap.add_argument("--sdpa", choices=("math", "cpu"), default="math")
    ap.add_argument("--fused-rms-norm", action="store_true",
                    help="count F.rms_norm as one kernel (fused on CUDA in recent torch) instead of its CPU parts")
    ap.add_argument("--baseline", help="another source tree, measured alternately in the same run")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds with --baseline")
    ap.add_argument("--json", help="write every figure here")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    trees = {"this": here} | ({"baseline": args.baseline} if args.baseline else {})
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in trees}
    for i in range(args.rounds if args.baseline else 1):
        order = list(trees) if i % 2 == 0 else list(reversed(trees))
        for label in order:
            runs[label].append(run_tree(trees[label], args))
    result = {}
    for label, rs in runs.items():
        r = dict(rs[0], cpu_ms_per_step=statistics.median(x["cpu_ms_per_step"] for x in rs),
                 cpu_ms_rounds=[x["cpu_ms_per_step"] for x in rs], tree=trees[label])
        result[label] = r
        show(label, r)
    if args.baseline:
        b, t = result["baseline"], result["this"]
        print(f"   ratio: ops {t['ops_per_step'] / b['ops_per_step']:.2f}, "
              f"CPU ms {t['cpu_ms_per_step'] / b['cpu_ms_per_step']:.2f} (this / baseline)")
    print("top ops (this):", ", ".join(f"{k.removeprefix('aten.')} {v}" for k, v in result["this"]["top_ops"].items()))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
