"""The bench's parts: the random-model cache that survives interruptions, the report, the audio.

The interrupted-write tests interrupt for real: a writer that raises KeyboardInterrupt
midway (Ctrl-C), and a child process that dies with os._exit in the middle of a write
(a kill), after which a later run must neither use nor keep the half-written folder.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from sisyphus.bench.asr import forced_tokens, speech_audio, speech_clip
from sisyphus.bench.models import STAMP, ensure_folder, is_complete, prepare_random_models
from sisyphus.bench.report import BenchReport
from sisyphus.bench.run import DEFAULT_STAGES, _skip_for_missing_package, parse_stages, resolve_size, run_stage
from sisyphus.frames import MIC_RATE_HZ
from sisyphus.tts.qwen3.synthetic import official_files, reduce_config

REPO = Path(__file__).resolve().parents[2]
STAMP_VALUE = {"format": 1, "key": "asr", "size": "tiny"}


def write_two_files(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "weights.bin").write_bytes(b"\0" * 64)


def test_a_write_stopped_by_ctrl_c_leaves_nothing_that_counts(tmp_path):
    target = tmp_path / "tiny" / "asr"

    def interrupted(folder: Path) -> None:
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ensure_folder(target, interrupted, STAMP_VALUE)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # the temporary folder went too
    calls: list[Path] = []
    ensure_folder(target, lambda folder: (calls.append(folder), write_two_files(folder)), STAMP_VALUE)
    assert len(calls) == 1 and is_complete(target, STAMP_VALUE)
    assert sorted(p.name for p in target.iterdir()) == sorted([STAMP, "config.json", "weights.bin"])
    # Complete now: the next call reuses it without writing.
    ensure_folder(target, lambda folder: calls.append(folder), STAMP_VALUE)
    assert len(calls) == 1


def test_a_run_that_finished_first_keeps_its_folder(tmp_path):
    """Two benches at once: the one that finishes second must not delete (or rename over)
    the folder the first is already using."""
    target = tmp_path / "tiny" / "asr"

    def write_while_another_run_finishes(folder: Path) -> None:
        write_two_files(folder)
        (folder / "weights.bin").write_bytes(b"ours")
        write_two_files(target)  # the other run's complete folder lands meanwhile
        (target / STAMP).write_text(json.dumps(STAMP_VALUE, sort_keys=True), encoding="utf-8")

    assert ensure_folder(target, write_while_another_run_finishes, STAMP_VALUE) == target
    assert (target / "weights.bin").read_bytes() != b"ours"  # the first run's copy, untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["asr"]  # our temporary copy is gone


def test_a_write_killed_midway_is_not_reused_and_is_cleaned_up(tmp_path):
    target = tmp_path / "tiny" / "asr"
    child = f"""
import os, sys
from pathlib import Path
from sisyphus.bench.models import ensure_folder
def die_midway(folder):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{{}}")
    os._exit(9)  # no finally, no cleanup: what a kill does
ensure_folder(Path({str(target)!r}), die_midway, {STAMP_VALUE!r})
"""
    done = subprocess.run([sys.executable, "-c", child], env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 9, done.stderr
    leftovers = list(target.parent.iterdir())
    assert [p.name for p in leftovers] == [f".asr.partial-{leftovers[0].name.rsplit('-', 1)[1]}"]
    assert not target.exists()
    # The next run writes the real tiny ASR checkpoint and removes the dead process's folder.
    folders = prepare_random_models(tmp_path, "tiny")
    assert folders["asr"] == target and is_complete(target, STAMP_VALUE)
    assert json.loads((target / "config.json").read_text())["model_type"] == "glmasr"
    assert not leftovers[0].exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["asr", "tts_base", "tts_custom"]


def test_a_folder_without_a_matching_stamp_is_rewritten(tmp_path):
    target = tmp_path / "asr"
    write_two_files(target)  # looks like a model, but nothing says it was finished
    (target / "stale.txt").write_text("old")
    ensure_folder(target, write_two_files, STAMP_VALUE)
    assert not (target / "stale.txt").exists() and is_complete(target, STAMP_VALUE)
    other_size = dict(STAMP_VALUE, size="reduced")
    assert not is_complete(target, other_size)


def test_reduced_tts_keeps_every_width_and_cuts_layers():
    official = official_files("custom_voice", "1b7")["config.json"]
    reduced = reduce_config(official)
    talker, ref = reduced["talker_config"], official["talker_config"]
    assert (talker["num_hidden_layers"], ref["num_hidden_layers"]) == (4, 28)
    predictor = talker["code_predictor_config"]
    assert predictor["num_hidden_layers"] == 2 and len(predictor["layer_types"]) == 2
    for key in ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim",
                "vocab_size", "text_vocab_size", "codec_eos_token_id"):
        assert talker[key] == ref[key], key
    assert predictor["hidden_size"] == ref["code_predictor_config"]["hidden_size"] == 1024
    assert official["talker_config"]["num_hidden_layers"] == 28  # the input is not changed


def test_figures_hold_every_value_and_their_statistics():
    report = BenchReport(stages=["asr"])
    figure = report.add("asr", "5 s utterance", "ms", [30.0, 10.0, 20.0, 40.0, 50.0], note="18 tokens")
    assert (figure.n, figure.median, figure.p90) == (5, 30.0, pytest.approx(46.0))
    report.add("memory", "peak RSS", "GB", [1.5])
    report.add("vad", "per frame", "ms", [0.25, 0.5])
    report.note("asr", "forced lengths")
    data = report.to_json()
    assert [f["stage"] for f in data["figures"]] == ["vad", "asr", "memory"]  # turn order
    assert data["figures"][1] == {"stage": "asr", "name": "5 s utterance", "unit": "ms", "n": 5, "median": 30.0,
                                  "p90": pytest.approx(46.0), "values": [30.0, 10.0, 20.0, 40.0, 50.0],
                                  "note": "18 tokens", "meta": {}}
    assert data["notes"] == [{"stage": "asr", "text": "forced lengths"}]
    with pytest.raises(ValueError, match="non-finite"):
        report.add("tts", "first audio (preset)", "ms", [1.0, math.nan])


def test_the_table_lists_figures_notes_and_size():
    report = BenchReport(environment={"device": "cpu", "dtype": "fp32", "random_weights": True, "size": "reduced"})
    report.add("tts", "real-time factor (preset)", "x", [0.4, 0.5, 0.6], note="63 frames, 5.04 s of audio")
    report.note("tts", "reply forced")
    out = io.StringIO()
    report.render(Console(file=out, width=200))
    text = out.getvalue()
    assert "random weights, reduced size" in text and "reduced models (official widths, fewer layers" in text
    row = next(line for line in text.splitlines() if "real-time factor (preset)" in line)
    assert [cell.strip() for cell in row.split("│")[3:7]] == ["0.500", "0.580", "x", "3"]
    assert "tts: reply forced" in text


def test_speech_audio_loops_the_packaged_clips():
    clip, text = speech_clip()
    assert text == "What time is it in Paris right now?" and 1.5 < clip.size / MIC_RATE_HZ < 3.0
    audio = speech_audio(20)
    assert audio.shape == (20 * MIC_RATE_HZ,) and audio.dtype == np.float32
    assert np.array_equal(audio[: clip.size], clip)
    assert float(np.sqrt(np.mean(audio**2))) > 0.01
    assert [forced_tokens(s) for s in (2, 5, 10, 20)] == [7, 18, 35, 70]


def test_stages_and_sizes():
    assert parse_stages(None) == DEFAULT_STAGES == ("vad", "turn", "asr", "tts", "pipeline")
    assert parse_stages(["tts", "llm", "tts"]) == ("tts", "llm")
    assert (resolve_size("auto", "cpu"), resolve_size("auto", "cuda:0"), resolve_size("full", "cpu")) == (
        "reduced", "full", "full")


def test_a_stage_module_that_is_missing_becomes_a_note():
    class Holder:
        report = BenchReport()

    run_stage(Holder, "no_such_stage")
    assert Holder.report.notes == [("no_such_stage", "stage not available in this installation; skipped")]


def test_a_stage_whose_package_is_missing_becomes_a_note_and_other_errors_stay_errors(monkeypatch):
    """The pipeline stage needs soundfile (its file sink); a machine without it still benches the rest."""
    import sys

    class Holder:
        report = BenchReport()
        said: list[str] = []
        say = said.append

    for module in [m for m in sys.modules if m.startswith(("sisyphus.audio", "sisyphus.bench.pipeline"))]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "soundfile", None)  # import soundfile now fails as if not installed
    run_stage(Holder, "pipeline")
    assert Holder.report.notes == [
        ("pipeline", "skipped: needs the Python package 'soundfile' (pip install it, or run the other stages)")
    ]
    assert Holder.said == ["pipeline: skipped, it needs the Python package 'soundfile', which is not installed"]
    assert Holder.report.figures == []

    # A module of Sisyphus's own that is missing is a bug, not a note.
    with pytest.raises(ModuleNotFoundError):
        _skip_for_missing_package(Holder, "tts", ModuleNotFoundError("gone", name="sisyphus.tts.gone"))
