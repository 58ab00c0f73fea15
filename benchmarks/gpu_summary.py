"""The table `gpu_check.sh` prints last: what a GPU run proved, read from the files it wrote.

    python benchmarks/gpu_summary.py OUTDIR [--bundle FILE]

Reads OUTDIR/bench.json (`sisyphus bench --json`), asr_generate.json, tts_stream.json and
tests.log; whatever is missing shows as "not measured" with the step's log to read. Prints
markdown: the machine, each fast path on/off with its reason, the headline figures beside
the issue-9 targets, and the test summary. `--bundle FILE` also writes one JSON with all of
it (the table, the machine, the test summary and each step's JSON): the file kept under
benchmarks/results/.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

# name in the table, unit, target (None: no target), how to find it in bench.json
TARGETS = {
    "asr_5s_ms": 60.0,
    "tts_audible_ms": 25.0,
    "tts_rtf": 0.08,
    "own_share_ms": 150.0,
    "overhead_ms": 5.0,
    "gpu_peak_gb": 9.0,
}


def load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def figure(bench: Any, stage: str, *names: str) -> dict | None:
    """The first figure of `stage` whose name starts with one of `names` (in that order)."""
    if not bench:
        return None
    for name in names:
        for fig in bench.get("figures", []):
            if fig.get("stage") == stage and fig.get("name", "").startswith(name):
                return fig
    return None


def cell(fig: dict | None, fmt: str = "{:.1f}") -> str:
    if fig is None or fig.get("median") is None:
        return "not measured"
    text = fmt.format(fig["median"])
    return f"{text} (p90 {fmt.format(fig['p90'])})" if fig.get("n", 1) > 1 and fig.get("p90") is not None else text


def verdict(fig: dict | None, target: float | None) -> str:
    if fig is None or target is None or fig.get("median") is None:
        return ""
    return "met" if fig["median"] <= target else "NOT met"


def tests_line(out: Path) -> str:
    try:
        text = (out / "tests.log").read_text()
    except OSError:
        return "tests: no log"
    found = re.findall(r"^=*\s*(.*\b(?:passed|failed|skipped|error)\b.*?)\s*=*$", text, re.M)
    return f"tests: {found[-1]}" if found else "tests: no summary line (see tests.log)"


def rows(bench: Any) -> list[tuple[str, dict | None, float | None, str]]:
    memory = [f for f in (bench or {}).get("figures", []) if f.get("name", "").startswith("process GPU peak")]
    one_tts = next((f for f in memory if "tts_base" not in f["name"] or "tts_custom" not in f["name"]), None)
    return [
        ("ASR, 5 s utterance (ms)", figure(bench, "asr", "5 s utterance"), TARGETS["asr_5s_ms"], "{:.1f}"),
        ("TTS audible first audio, preset (ms)", figure(bench, "tts", "audible first audio (preset)"),
         TARGETS["tts_audible_ms"], "{:.1f}"),
        ("TTS first chunk, preset (ms)", figure(bench, "tts", "first audio (preset)", "first chunk (preset)"), None,
         "{:.1f}"),
        ("TTS real-time factor, preset", figure(bench, "tts", "real-time factor (preset)"), TARGETS["tts_rtf"],
         "{:.3f}"),
        ("TTS audible first audio, cloned (ms)", figure(bench, "tts", "audible first audio (cloned)"),
         TARGETS["tts_audible_ms"], "{:.1f}"),
        ("TTS real-time factor, cloned", figure(bench, "tts", "real-time factor (cloned)"), TARGETS["tts_rtf"],
         "{:.3f}"),
        ("own share of voice to voice (ms)", figure(bench, "pipeline", "Sisyphus's own share"),
         TARGETS["own_share_ms"], "{:.1f}"),
        ("pipeline overhead (ms)", figure(bench, "pipeline", "overhead outside model compute"),
         TARGETS["overhead_ms"], "{:.1f}"),
        ("voice to voice (ms)", figure(bench, "pipeline", "voice to voice"), None, "{:.0f}"),
        ("process GPU peak, ASR + one TTS (GB)", one_tts,
         TARGETS["gpu_peak_gb"], "{:.2f}"),
        ("process GPU peak, all loaded (GB)", memory[-1] if len(memory) > 1 else None, None, "{:.2f}"),
        ("torch peak reserved, all loaded (GB)", figure(bench, "memory", "peak GPU reserved"), None, "{:.2f}"),
    ]


def summary(out: Path) -> str:
    bench, asr, tts = (load(out / name) for name in ("bench.json", "asr_generate.json", "tts_stream.json"))
    env = (bench or {}).get("environment", {})
    lines = ["## GPU check", ""]
    if env:
        lines.append(f"{env.get('gpu_name') or env.get('device')} · {env.get('dtype')} · {env.get('size')} random "
                     f"weights · torch {env.get('torch')} · transformers {env.get('transformers')} · CUDA "
                     f"{env.get('cuda')} · {env.get('date')}")
    else:
        lines.append("bench.json missing: see bench.log")
    lines += ["", "| fast path | state |", "|---|---|"]
    paths = {p["name"]: p for p in (bench or {}).get("fast_paths", [])}
    for name, state in ((asr or {}).get("environment", {}).get("fast_paths") or {}).items():
        described = state.split(": ", 1)[-1]  # "on (...)" / "off (...)"
        paths.setdefault(name, {"name": name, "enabled": described.startswith("on"),
                                "detail": described.partition(" (")[2].rstrip(")")})
    for p in paths.values():
        lines.append(f"| {p['name']} | {'on' if p['enabled'] else 'OFF'}{' — ' + p['detail'] if p['detail'] else ''} |")
    lines += ["", "| figure | median | target | |", "|---|---:|---:|---|"]
    for label, fig, target, fmt in rows(bench):
        lines.append(f"| {label} | {cell(fig, fmt)} | {'' if target is None else f'≤ {target:g}'} | "
                     f"{verdict(fig, target)} |")
    first = figure(bench, "tts", "first audio (preset)")
    if first and "prefill_ms" in first.get("meta", {}):
        meta = first["meta"]
        med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
        lines.append(f"| TTS preset, where time goes: prefill / frame step / vocoder per frame (ms) | "
                     f"{med(meta['prefill_ms']):.1f} / {med(meta['step_ms_per_frame']):.2f} / "
                     f"{med(meta['decode_ms_per_frame']):.2f} | | graphed: {all(meta.get('graphed', []))} |")
    for row in (asr or {}).get("rows", []):
        lines.append(f"| asr_generate {row['audio_s']} s: compiled / generate (ms) | {row['ours_median_ms']:.1f} / "
                     f"{row['plain_median_ms']:.1f} | | ids identical: {'yes' if row['ids_identical'] else 'no'} |")
    ours = ((tts or {}).get("summary") or {}).get("sisyphus")
    if ours:
        audible = ours.get("audible_first_audio_ms")
        lines.append(f"| tts_stream (Sisyphus alone): first audio / audible / per frame (ms), RTF | "
                     f"{ours['first_audio_ms']:.1f} / {'n/a' if audible is None else f'{audible:.1f}'} / "
                     f"{ours['per_frame_ms']:.1f}, {ours['rtf']:.3f} | | |")
    lines += ["", tests_line(out), ""]
    return "\n".join(lines)


def bundle(out: Path) -> dict[str, Any]:
    """Everything one GPU check measured, in one JSON object."""
    env = (out / "env.log").read_text(errors="replace") if (out / "env.log").is_file() else ""
    return {
        "summary_md": summary(out),
        "machine": [line for line in env.splitlines() if line.startswith(("python ", "CUDA", "| NVIDIA-SMI"))],
        "tests": tests_line(out),
        "bench": load(out / "bench.json"),
        "asr_generate": load(out / "asr_generate.json"),
        "tts_stream": load(out / "tts_stream.json"),
        "asr_breakdown": load(out / "asr_breakdown.json"),
    }


def main() -> int:
    args = sys.argv[1:]
    if len(args) not in (1, 3) or (len(args) == 3 and args[1] != "--bundle"):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    out = Path(args[0])
    print(summary(out))
    if len(args) == 3:
        Path(args[2]).write_text(json.dumps(bundle(out), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
