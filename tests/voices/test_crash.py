"""A clone that dies part-way, end to end: `sisyphus voices clone` in a child process whose
file-size limit (RLIMIT_FSIZE) stops it while it writes the voice's reference.wav.

With SIGXFSZ at the kernel's default the process is killed on the spot (no Python cleanup
runs, like a power cut); with SIGXFSZ ignored (CPython's default) the write fails with
EFBIG and the command reports it. Either way `list` must never show the half voice and the library must end up
exactly as it was.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.voices.helpers import library_of, run, snapshot, stored

LIMIT_BYTES = 300_000  # the 7 s float32 reference.wav is about 710 kB; the prompt is smaller


# CPython ignores SIGXFSZ at start-up; the "killed" runs restore the kernel's default.
CHILD = (
    "import runpy, signal, sys\n"
    "if sys.argv[1] == 'kill':\n"
    "    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)\n"
    "sys.argv = ['sisyphus', *sys.argv[2:]]\n"
    "runpy.run_module('sisyphus.cli', run_name='__main__')\n"
)


def clone_in_child(config_file: Path, wav: Path, *, killed: bool) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT_BYTES, LIMIT_BYTES))

    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(
        [sys.executable, "-c", CHILD, "kill" if killed else "report", "voices", "clone", "fox",
         "--audio", str(wav), "--text", "The quick brown fox.", "--config", str(config_file)],
        env=env, preexec_fn=limit, capture_output=True, text=True, timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip


def visible(folder: Path) -> dict[str, bytes | None]:
    return {k: v for k, v in snapshot(folder).items() if not k.startswith(".")}


@pytest.mark.slow
def test_a_clone_killed_mid_write_leaves_no_voice(config_file: Path, tiny_base: Path, speech_files) -> None:
    stored(config_file, "alice")
    folder = config_file.parent / "my-voices"
    before = snapshot(folder)
    child = clone_in_child(config_file, speech_files["wav22k"], killed=True)
    assert child.returncode == -signal.SIGXFSZ, child.stderr
    # It died inside the hidden temporary folder, with reference.wav cut at the limit.
    leftovers = [p for p in folder.iterdir() if p.name.startswith(".tmp-fox-")]
    assert len(leftovers) == 1
    assert (leftovers[0] / "reference.wav").stat().st_size == LIMIT_BYTES
    assert visible(folder) == before
    listed = run(config_file, "list", "--json")
    assert '"fox"' not in listed.stdout and listed.stderr == ""
    # The next write sees the writer is dead and removes what it left.
    assert run(config_file, "delete", "alice", "--yes").exit_code == 0
    assert sorted(p.name for p in folder.iterdir()) == []
    assert library_of(config_file).list()[1] == []


@pytest.mark.slow
def test_a_failed_write_is_reported_and_undone(config_file: Path, tiny_base: Path, speech_files) -> None:
    stored(config_file, "alice")
    folder = config_file.parent / "my-voices"
    before = snapshot(folder)
    child = clone_in_child(config_file, speech_files["wav22k"], killed=False)
    assert child.returncode == 1, child.stderr
    assert child.stderr.strip().splitlines()[-1] == (
        f"error: cannot store voice 'fox' in {folder}: File too large. check free disk space and write permission"
    )
    assert snapshot(folder) == before
