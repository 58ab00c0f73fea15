"""Running the real `sisyphus talk` in a subprocess: config, environment, transcript."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import yaml

REPO = Path(__file__).resolve().parents[2]


def write_config(folder: Path, *, asr: Path, tts_custom: Path, tts_base: Path, llm_url: str, **extra: Any) -> Path:
    """A models.yaml for tiny local models and the local LLM server."""
    config: dict[str, Any] = {
        "device": "cpu",
        "models": {"asr": str(asr), "tts_custom": str(tts_custom), "tts_base": str(tts_base)},
        "voice": {"default": "vivian", "language": "english", "library": str(folder / "voices")},
        "llm": {"base_url": llm_url, "model": "test-model", "timeout_s": 10, "max_retries": 1},
        # Random TTS weights never stop by themselves: the length guard ends each phrase.
        "tts": {"max_seconds_per_phrase": 0.8, "seed": 1},
    }
    for dotted, value in extra.items():
        *parents, leaf = dotted.split("__")
        node = config
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path = folder / "models.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def talk_env(tmp: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(base or os.environ)
    env.update(
        SISYPHUS_TRANSCRIPT_DIR=str(tmp / "sessions"),
        HF_HOME=str(tmp / "hf"),  # nothing cached: a repo id would fail, never download
        HF_HUB_OFFLINE="1",
        OPENAI_API_KEY="test-key",
        OMP_NUM_THREADS="2",
        PYTHONUNBUFFERED="1",
    )
    env.pop("SISYPHUS_CONFIG", None)
    return env


def talk_command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "sisyphus.cli", "talk", "--config", str(config), "--plain", *args]


def run_talk(config: Path, env: dict[str, str], *args: str, timeout_s: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        talk_command(config, *args), env=env, cwd=REPO, capture_output=True, text=True,
        timeout=timeout_s, stdin=subprocess.DEVNULL,
    )


def transcript(tmp: Path) -> list[dict[str, Any]]:
    """The records of the one session transcript under tmp/sessions."""
    files = sorted((tmp / "sessions").glob("*.jsonl"))
    assert len(files) == 1, f"expected one transcript, found {files}"
    return [json.loads(line) for line in files[0].read_text().splitlines() if line.strip()]


def wait_for_records(tmp: Path, predicate, timeout_s: float = 120) -> list[dict[str, Any]]:
    """Wait until the transcript holds records satisfying `predicate(records)`."""
    deadline = time.monotonic() + timeout_s
    records: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        files = sorted((tmp / "sessions").glob("*.jsonl"))
        if files:
            records = [json.loads(line) for line in files[0].read_text().splitlines() if line.strip()]
            if predicate(records):
                return records
        time.sleep(0.1)  # polling a file another process writes; bounded by the deadline
    raise AssertionError(f"transcript never satisfied the condition; last records: {records[-5:]}")


def of_type(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("type") == kind]


def sound_spans(samples: np.ndarray, rate_hz: int, *, gap_s: float = 0.3, floor: float = 1e-4) -> list[tuple[float, float]]:
    """(start, end) seconds of stretches with sound, merging gaps shorter than gap_s."""
    block = rate_hz // 100
    n = len(samples) // block
    loud = np.abs(samples[: n * block]).reshape(n, block).max(axis=1) > floor
    spans: list[list[float]] = []
    for i in np.flatnonzero(loud):
        t = i / 100
        if spans and t - spans[-1][1] <= gap_s:
            spans[-1][1] = t + 0.01
        else:
            spans.append([t, t + 0.01])
    return [(a, b) for a, b in spans]


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    return data[:, 0], rate


def run_typed(
    config: Path, env: dict[str, str], lines: list[str], *args: str, timeout_s: float = 240
) -> subprocess.CompletedProcess:
    """`talk --text --plain` with `lines` piped in, replies into tmp output: a whole session
    without ASR, so a test of the LLM or transcript path costs no speech."""
    return subprocess.run(
        [*talk_command(config, "--text", *args)], env=env, cwd=REPO, capture_output=True, text=True,
        timeout=timeout_s, input="".join(f"{line}\n" for line in lines),
    )


def plain_lines(stdout: str, kind: str) -> list[str]:
    """The `--plain` lines of one kind ("error", "warning", "assistant", ...), without timestamps."""
    found = []
    for line in stdout.splitlines():
        _, _, rest = line.partition(" ")
        if rest.startswith(f"{kind}:") or rest.startswith(f"{kind} ("):
            found.append(rest)
    return found
