"""`build_reference_env.sh` run twice at once: each run that says "ready" has a whole
environment, and stays so while the other run builds.

The real build downloads torch and transformers 4.57.3 (minutes); here `PYTHON` is a
stand-in whose `-m venv` makes a fake environment: its `pip install X` records X, its
python answers the script's two questions. Two steps wait at a gate the test opens
(`torch` and the final import check), so the runs interleave exactly as two CI jobs can:
the old script removed the environment whenever the stamp was missing, so the second run
deleted the first's finished packages just before the first declared it ready.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.oracle.refenv import BUILD_SCRIPT

FAKE_PYTHON = r"""#!/bin/bash
# python -m venv DIR: a fake venv whose pip and python find their folder from their path.
[ "$1" = "-m" ] && [ "$2" = "venv" ] || exit 2
mkdir -p "$3/bin" "$3/lib/site-packages"
cat > "$3/bin/pip" <<'PIP'
#!/bin/bash
site="$(cd "$(dirname "$0")/.." && pwd)/lib/site-packages"
gate() { touch "$GATES/at-$1-$PPID"; for _ in $(seq 600); do [ -f "$GATES/go-$1-$PPID" ] && return; sleep 0.05; done; exit 9; }
for arg in "$@"; do
  case "$arg" in
    torch==*) gate torch; touch "$site/torch" ;;
    transformers==*) touch "$site/transformers" ;;
    qwen-tts==*) touch "$site/qwen_tts" ;;
  esac
done
PIP
cat > "$3/bin/python" <<'PY'
#!/bin/bash
site="$(cd "$(dirname "$0")/.." && pwd)/lib/site-packages"
gate() { touch "$GATES/at-$1-$PPID"; for _ in $(seq 600); do [ -f "$GATES/go-$1-$PPID" ] && return; sleep 0.05; done; exit 9; }
case "$2" in
  *sysconfig*) echo "$site" ;;
  *qwen_tts*) gate check; for p in torch transformers qwen_tts torchaudio/compliance/kaldi.py; do [ -e "$site/$p" ] || exit 1; done ;;
esac
PY
chmod +x "$3/bin/pip" "$3/bin/python"
"""


class Build:
    """One run of the script; `reach` waits until it stands at a gate, `open` lets it pass."""

    def __init__(self, venv: Path, python: Path, gates: Path) -> None:
        self.gates = gates
        self.proc = subprocess.Popen(
            ["bash", str(BUILD_SCRIPT), str(venv)],
            env={"PYTHON": str(python), "PATH": "/usr/bin:/bin", "GATES": str(gates)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def reach(self, step: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not (self.gates / f"at-{step}-{self.proc.pid}").exists():  # a file another process writes
            assert self.proc.poll() is None, self.proc.communicate()
            assert time.monotonic() < deadline, f"never reached {step}"
            time.sleep(0.02)

    def open(self, step: str) -> None:
        (self.gates / f"go-{step}-{self.proc.pid}").touch()

    def finish(self) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=120)
        return self.proc.returncode, out.strip(), err


def setup(tmp_path: Path) -> tuple[Path, Path]:
    python, gates = tmp_path / "fake-python", tmp_path / "gates"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    gates.mkdir()
    return python, gates


def whole(venv: Path) -> bool:
    site = venv / "lib" / "site-packages"
    return (venv / ".sisyphus-ready-v1").is_file() and all(
        (site / p).exists() for p in ("torch", "transformers", "qwen_tts", "torchaudio/compliance/kaldi.py")
    )


def test_a_second_build_never_takes_the_first_ones_environment_away(tmp_path):
    python, gates = setup(tmp_path)
    venv = tmp_path / "cache" / "qwen-tts-ref"
    first = Build(venv, python, gates)
    first.reach("torch")
    first.open("torch")
    first.reach("check")  # the first run has everything and is about to say so
    second = Build(venv, python, gates)
    second.reach("torch")  # the second run started without a stamp and is installing
    first.open("check")
    assert first.finish() == (0, str(venv), "")
    assert whole(venv)  # ready means ready, while the second run still builds
    second.open("torch")
    second.reach("check")
    second.open("check")
    code, out, err = second.finish()
    assert (code, out) == (0, str(venv)), err
    assert whole(venv)
    assert sorted(p.name for p in venv.parent.iterdir()) == ["qwen-tts-ref"]  # nothing left aside
    third = Build(venv, python, gates)  # a built environment is reused as it is
    assert third.finish()[:2] == (0, str(venv))


def test_a_leftover_without_its_stamp_is_replaced(tmp_path):
    python, gates = setup(tmp_path)
    venv = tmp_path / "qwen-tts-ref"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "half-written").write_text("a killed run's leftovers")
    run = Build(venv, python, gates)
    run.reach("torch")
    run.open("torch")
    run.reach("check")
    run.open("check")
    assert run.finish()[:2] == (0, str(venv))
    assert whole(venv) and not (venv / "bin" / "half-written").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake-python", "gates", "qwen-tts-ref"]
