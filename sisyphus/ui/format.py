"""Text for the numbers both views show, so the dashboard and the plain log agree.

Status objects are read by attribute name (mappings by key): the UI accepts whatever
`sisyphus.runtime` hands it without importing it, and a missing field shows as "?"
rather than breaking the screen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from sisyphus.frames import BargeIn, EchoStatus, TurnLatency
from sisyphus.ui.events import ModelsLoaded

GIB = 1 << 30
MIB = 1 << 20
KIB = 1 << 10

# (attribute of TurnLatency, label) in the order of the reply's milestones.
LATENCY_FIELDS: tuple[tuple[str, str], ...] = (
    ("asr_ms", "asr"),
    ("llm_first_token_ms", "llm"),
    ("tts_first_audio_ms", "tts"),
    ("tts_audible_ms", "audible"),
    ("voice_to_voice_ms", "voice-to-voice"),
)


def field_of(obj: object, name: str) -> object | None:
    """obj.name, or obj[name] for a mapping; None when absent."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def fmt_bytes(n: object) -> str:
    if not isinstance(n, (int, float)) or isinstance(n, bool) or n < 0:
        return "?"
    if n >= GIB:
        return f"{n / GIB:.1f} GiB"
    if n >= MIB:
        return f"{n / MIB:.0f} MiB"
    return f"{n / KIB:.0f} KiB"


def fmt_ms(ms: float | None) -> str:
    return "—" if ms is None else f"{ms:.0f} ms"


def fmt_capability(cap: object) -> str:
    """(8, 6) or "8.6" or 8.6 → "8.6"."""
    if isinstance(cap, (tuple, list)):
        return ".".join(str(part) for part in cap)
    return "?" if cap is None else str(cap)


def cuda_lines(status: object) -> list[str]:
    """One line for the CUDA state, and a second saying what to install when it is off."""
    torch_version = field_of(status, "torch_version") or "?"
    if field_of(status, "available"):
        name = field_of(status, "device_name") or "?"
        cap = fmt_capability(field_of(status, "capability"))
        cuda = field_of(status, "cuda_version") or "?"
        return [f"CUDA: {name}, compute {cap}, torch {torch_version}, CUDA {cuda}"]
    reason = field_of(status, "reason") or "unknown reason"
    version = "" if str(torch_version) in str(reason) else f" (torch {torch_version})"
    lines = [f"CUDA unavailable: {reason}{version}"]
    fix = field_of(status, "fix")
    if fix:
        lines.append(f"to fix: {' '.join(str(fix).split())}")
    return lines


def memory_line(snapshot: object) -> str:
    rss = f"RSS {fmt_bytes(field_of(snapshot, 'rss_bytes'))}"
    total = field_of(snapshot, "gpu_total_bytes")
    if not total:
        return f"{rss} · GPU n/a"
    allocated = fmt_bytes(field_of(snapshot, "gpu_allocated_bytes"))
    reserved = fmt_bytes(field_of(snapshot, "gpu_reserved_bytes"))
    return (
        f"{rss} · GPU {allocated} allocated / {reserved} reserved / "
        f"{fmt_bytes(total)} total"
    )


def latency_line(event: TurnLatency) -> str:
    """"asr 85 ms, llm 320 ms, ..." — each stage's own time; voice-to-voice is the total."""
    parts = [
        f"{label} {fmt_ms(value)}"
        for attr, label in LATENCY_FIELDS
        if (value := getattr(event, attr)) is not None
    ]
    if event.tts_rtf is not None:
        parts.append(f"tts rtf {event.tts_rtf:.2f}")
    parts += [f"{name} {fmt_ms(value)}" for name, value in event.extra.items()]
    return ", ".join(parts) if parts else "no measurements"


def models_line(event: ModelsLoaded) -> str:
    """"asr (4.1 s), tts_custom (12.0 s) on cuda:0, bf16" or "none"."""
    seconds = dict(event.load_seconds)
    names = [
        f"{name} ({seconds[name]:.1f} s)" if name in seconds else name for name in event.models
    ]
    text = ", ".join(names) if names else "none"
    where = ", ".join(part for part in (event.device, event.dtype) if part)
    return f"{text} on {where}" if names and where else text


def clamp_dbfs(dbfs: float, floor_dbfs: float = -60.0) -> float:
    """A level in [floor, 0]; -inf (digital silence) and NaN sit at the floor."""
    if math.isnan(dbfs):
        return floor_dbfs
    return min(0.0, max(floor_dbfs, dbfs))


def turn_end_line(decision: object) -> str:
    """Why a turn ended: "complete (Smart Turn 0.93) after 224 ms of silence, model 12 ms"."""
    reason = field_of(decision, "reason") or "?"
    silence = f"{fmt_ms(field_of(decision, 'silence_ms'))} of silence"
    probability = field_of(decision, "probability")
    model_ms = field_of(decision, "model_ms")
    verdict = f" (Smart Turn {probability:.2f})" if isinstance(probability, float) else ""
    cost = f", model {fmt_ms(model_ms)}" if isinstance(model_ms, float) else ""
    if reason == "incomplete":
        return f"incomplete{verdict}: waited {silence}{cost}"
    if reason == "input ended":
        return "input ended"
    return f"{reason}{verdict} after {silence}{cost}"


def turn_end_short(decision: object) -> str:
    """The latency table's cell: "complete 0.93", "incomplete 0.12", "silence"."""
    reason = str(field_of(decision, "reason") or "?")
    probability = field_of(decision, "probability")
    return f"{reason} {probability:.2f}" if isinstance(probability, float) else reason


def preempt_line(event: object) -> str:
    """A prepared reply's fate: used (a hit) or dropped unheard (a miss)."""
    if field_of(event, "hit"):
        ahead = field_of(event, "head_start_ms")
        lead = f" {fmt_ms(ahead)} before the end of turn" if isinstance(ahead, float) else ""
        return f"hit (turn {field_of(event, 'turn_id')}): the reply prepared{lead} plays"
    text = str(field_of(event, "text") or "")
    said = text if len(text) <= 40 else text[:39] + "…"
    return f"miss: the reply prepared after “{said}” was dropped unheard"


def echo_line(event: EchoStatus) -> str:
    """"on (AEC3 echo canceller, ...)" at start; "on: echo reduced by 31 dB over 6.2 s of reply" after one."""
    if event.seconds <= 0:
        return f"{event.state} ({event.detail})" if event.detail else event.state
    if event.echo_reduction_db is None:
        return f"{event.state}: no echo heard over {event.seconds:.1f} s of reply"
    heard = f" (mic heard it at {event.echo_dbfs:.0f} dBFS)" if event.echo_dbfs is not None else ""
    return f"{event.state}: echo reduced by {event.echo_reduction_db:.0f} dB over {event.seconds:.1f} s of reply{heard}"


def barge_in_line(event: BargeIn) -> str:
    """"reply paused", then "reply resumed after “yeah” (0.4 s of speech, quiet 120 ms after it began)"."""
    if event.action == "paused":
        return "reply paused"
    said = f" {'after' if event.action == 'resumed' else 'by'} “{event.text}”" if event.text else ""
    facts = []
    if event.speech_ms is not None:
        facts.append(f"{event.speech_ms / 1000:.1f} s of speech")
    if event.pause_ms is not None:
        facts.append(f"quiet {event.pause_ms:.0f} ms after it began")
    detail = f" ({', '.join(facts)})" if facts else ""
    return f"reply {event.action}{said}{detail}"
