"""`sisyphus bench` as a user runs it: the real CLI on tiny random-weight models.

One subprocess runs vad, asr and tts with `--random-weights --size tiny` (the test-only
size: real code paths, test widths) and writes JSON; the tests check what it holds:
every stage's figures with the right count of positive values, the forced lengths
(7/18/35/70 ASR tokens, 63 TTS frames = 5.04 s), the environment and the notes. Speed
is never asserted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sisyphus.cli import app

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
REPEATS = 2
runner = CliRunner()


def run_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "sisyphus.cli", "bench", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One real run; returns (cache folder, the JSON report, the completed process)."""
    tmp = tmp_path_factory.mktemp("bench")
    cache, out = tmp / "cache", tmp / "report.json"
    done = run_cli("vad", "asr", "tts", "--random-weights", "--size", "tiny", "--repeats", str(REPEATS),
                   "--warmup", "1", "--seconds", "2", "--device", "cpu", "--cache", str(cache), "--json", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    return cache, json.loads(out.read_text()), done


def figures(report: dict, stage: str) -> dict[str, dict]:
    return {f["name"]: f for f in report["figures"] if f["stage"] == stage}


def test_every_asked_stage_has_its_figures_with_one_value_per_repeat(tiny_run):
    _, report, _ = tiny_run
    assert report["stages"] == ["vad", "asr", "tts"]
    assert [f["stage"] for f in report["figures"]] == ["vad"] + ["asr"] * 4 + ["tts"] * 6 + ["memory"]
    asr, tts = figures(report, "asr"), figures(report, "tts")
    assert list(asr) == ["2 s utterance", "5 s utterance", "10 s utterance", "20 s utterance"]
    assert list(tts) == ["first audio (preset)", "audible first audio (preset)", "real-time factor (preset)",
                         "first audio (cloned)", "audible first audio (cloned)", "real-time factor (cloned)"]
    for figure in [*asr.values(), *tts.values()]:
        assert figure["n"] == REPEATS == len(figure["values"])
        assert all(v > 0 for v in figure["values"]), figure
        assert figure["median"] == pytest.approx(float(np.median(figure["values"])))
        assert figure["p90"] == pytest.approx(float(np.percentile(figure["values"], 90)))
    assert {f["unit"] for f in asr.values()} == {"ms"}
    assert [f["unit"] for f in tts.values()] == ["ms", "ms", "x", "ms", "ms", "x"]
    for voice in ("preset", "cloned"):
        first, audible = tts[f"first audio ({voice})"]["values"], tts[f"audible first audio ({voice})"]["values"]
        # Tiny random models are loud from their first sample: heard as the first chunk starts to play,
        # which is when it arrives (the timer starts just before the model's own clock).
        assert all(f <= a < f + 50 for f, a in zip(first, audible)), (first, audible)
        assert tts[f"audible first audio ({voice})"]["meta"]["silent_replies"] == 0


def test_random_weights_generate_the_forced_lengths(tiny_run):
    _, report, _ = tiny_run
    asr = figures(report, "asr")
    assert [f["meta"]["tokens"] for f in asr.values()] == [[7] * REPEATS, [18] * REPEATS, [35] * REPEATS,
                                                           [70] * REPEATS]
    for name, figure in figures(report, "tts").items():
        assert figure["meta"]["frames"] == [63] * REPEATS, name
        assert figure["meta"]["audio_s"] == pytest.approx([5.04] * REPEATS), name
    first = figures(report, "tts")["first audio (preset)"]
    for i, first_ms in enumerate(first["values"]):  # the breakdown adds up to no more than the reply took
        meta = first["meta"]
        assert meta["prefill_ms"][i] > 0 and meta["step_ms_per_frame"][i] > 0 and meta["decode_ms_per_frame"][i] > 0
        assert meta["prefill_ms"][i] < first_ms
        spent = meta["prefill_ms"][i] + 63 * (meta["step_ms_per_frame"][i] + meta["decode_ms_per_frame"][i])
        assert spent <= 1000 * 5.04 * figures(report, "tts")["real-time factor (preset)"]["values"][i] + 1
    rtf = figures(report, "tts")["real-time factor (preset)"]
    assert rtf["note"] == "63 frames, 5.04 s of audio"
    notes = [n["text"] for n in report["notes"]]
    assert any("forced to 3.5 tokens per second" in n for n in notes)
    assert any("forced to 63 frames (5.04 s), sampled as talk samples" in n for n in notes)


def test_vad_and_memory_figures(tiny_run):
    _, report, _ = tiny_run
    vad = figures(report, "vad")["per frame"]
    assert vad["unit"] == "ms" and vad["n"] == 2 * 16000 // 512  # 2 s of audio in 512-sample frames
    assert all(v > 0 for v in vad["values"])
    rss = figures(report, "memory")["peak RSS"]
    assert rss["unit"] == "GB" and 0.2 < rss["values"][0] < 20
    assert rss["note"] == "resident: asr, tts_base, tts_custom"
    assert "peak GPU allocated" not in figures(report, "memory")  # a CPU run has no GPU figures


def test_the_environment_says_what_ran(tiny_run):
    cache, report, _ = tiny_run
    env = report["environment"]
    import torch
    import transformers

    assert env["device"] == "cpu" and env["gpu_name"] is None and env["dtype"] == "fp32"
    assert env["random_weights"] is True and env["size"] == "tiny"
    assert env["torch"] == torch.__version__ and env["transformers"] == transformers.__version__
    assert env["cuda"] == torch.version.cuda
    assert (env["repeats"], env["warmup"]) == (REPEATS, 1)
    assert env["models"] == {key: str(cache / "tiny" / key) for key in ("asr", "tts_custom", "tts_base")}
    for key in ("python", "platform", "cpu_count", "torch_threads", "date"):
        assert env[key], key
    assert report["fast_paths"], "the models report their fast paths (all fall back on a CPU)"
    for path in report["fast_paths"]:
        assert set(path) == {"name", "enabled", "detail"} and isinstance(path["enabled"], bool)


def test_the_table_shows_every_figure(tiny_run):
    _, report, done = tiny_run
    out = done.stdout
    assert "random weights, tiny size" in out
    for figure in report["figures"]:
        assert figure["name"] in out
    assert "not the real models' times" in out


def test_a_second_run_reuses_the_written_models(tiny_run):
    cache, _, _ = tiny_run
    stamps = {p: p.stat().st_mtime_ns for p in cache.glob("tiny/*/.sisyphus-bench.json")}
    assert len(stamps) == 3
    done = run_cli("vad", "--random-weights", "--size", "tiny", "--seconds", "1", "--repeats", "1",
                   "--cache", str(cache))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "writing random" not in done.stderr
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["vad", "speed"], "error: unknown bench stage 'speed'; valid stages: vad, turn, asr, tts, llm, pipeline, aec."),
        (["vad", "--size", "full"], "error: --size full only applies to --random-weights."),
        (["vad", "--repeats", "0"], "error: --repeats must be at least 1, got 0."),
        (["--random-weights", "--size", "huge"], "error: --size must be one of auto, reduced, full, tiny, got 'huge'."),
    ],
)
def test_bad_arguments_are_one_line_errors(args, message):
    result = runner.invoke(app, ["bench", *args])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != 0
    assert len(lines) == 1 and lines[0].startswith(message), result.output


def test_an_unwritable_cache_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    done = run_cli("vad", "--random-weights", "--size", "tiny", "--cache", str(blocker))
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last == (f"error: cannot write random weights into {blocker}/tiny/asr: Not a directory. "
                    "pass --cache DIR with a writable folder on a disk with room")
    assert blocker.read_text().startswith("a file")


def test_ctrl_c_still_shows_and_writes_what_was_measured(tiny_run, tmp_path):
    cache, _, _ = tiny_run
    out = tmp_path / "partial.json"
    args = ["vad", "asr", "tts", "--random-weights", "--size", "tiny", "--seconds", "1", "--repeats", "1",
            "--cache", str(cache), "--json", str(out)]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    with subprocess.Popen([sys.executable, "-m", "sisyphus.cli", "bench", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env, cwd=REPO) as proc:
        seen = []
        for line in proc.stderr:  # wait for the asr stage to be under way, then press Ctrl-C
            seen.append(line)
            if "asr: 5 s utterance" in line:
                proc.send_signal(signal.SIGINT)
                break
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, "".join(seen) + stderr
    assert stderr.strip().splitlines()[-1] == "interrupted"
    report = json.loads(out.read_text())
    names = [(f["stage"], f["name"]) for f in report["figures"]]
    assert names[0] == ("vad", "per frame") and names[-1] == ("memory", "peak RSS")
    assert ("tts", "first audio (preset)") not in names
    assert {"stage": "asr", "text": "interrupted (Ctrl-C): this stage and the ones after it are incomplete"} in (
        report["notes"])
    assert "per frame" in stdout and "interrupted (Ctrl-C)" in stdout


def test_debug_shows_sisyphus_and_not_numbas_compiler(tiny_run):
    """librosa's resampler is JIT-compiled by numba, which logs every bytecode block at
    DEBUG (313 of 580 lines of one run): --debug leaves third-party loggers at INFO."""
    cache, _, _ = tiny_run
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    env.pop("SISYPHUS_DEBUG_LOGGERS", None)
    done = subprocess.run(
        [sys.executable, "-m", "sisyphus.cli", "--debug", "bench", "tts", "--random-weights", "--size", "tiny",
         "--repeats", "1", "--warmup", "0", "--device", "cpu", "--cache", str(cache)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "numba" not in done.stderr
    assert " sisyphus." in done.stderr  # Sisyphus's own records are still there
