"""A config file as people break it, through the real CLI: one line (or one bullet per
field) and exit code 2, never a traceback, and never a print or a process that grows
with what YAML aliases expand to."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import REPO, talk_env


def run_cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str, int]:
    """(exit code, stdout, stderr, peak RSS in KiB) of `sisyphus ARGS` in a subprocess."""
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sisyphus.cli", *args], cwd=REPO, env=env or talk_env(tmp_path),
            stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
        )
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak memory
        finally:
            proc.returncode = 0  # reaped above; keeps Popen from waiting again
    code = os.waitstatus_to_exitcode(status)
    return code, out.read_text(errors="replace"), err.read_text(errors="replace"), usage.ru_maxrss


def talk_with(tmp_path: Path, config_bytes: bytes) -> tuple[int, str, str, int]:
    path = tmp_path / "models.yaml"
    path.write_bytes(config_bytes)
    return run_cli(tmp_path, "talk", "--config", str(path), "--text")


def alias_bomb(levels: int, width: int = 10) -> bytes:
    """A few hundred bytes that expand to width**levels strings through aliases."""
    lines = ['a0: &a0 "lol"']
    for level in range(1, levels + 1):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * width)}]")
    lines.append(f"llm:\n  model: *a{levels}")
    return "\n".join(lines).encode()


def test_bytes_that_are_not_utf8_are_one_line_naming_where(tmp_path):
    code, out, err, _ = talk_with(tmp_path, b"device: cpu\nllm:\n  model: caf\xe9\n")
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [
        f"error: {tmp_path / 'models.yaml'} is not UTF-8 text: byte 0xe9 at line 3, column 13. "
        "save it as UTF-8 (most editors offer this under 'Save as' or 'Encoding')"
    ]


def test_utf16_with_bom_as_powershell_writes_it_is_read(tmp_path):
    code, _, err, _ = talk_with(tmp_path, "memory: lots\n".encode("utf-16"))
    assert code == 2
    assert "memory: must be one of 'resident', 'lazy-tts', 'swap', got 'lots'" in err


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path):
    _, _, _, baseline_kib = talk_with(tmp_path, b"memory: lots\n")
    bomb = alias_bomb(levels=9)  # 10**9 strings
    assert len(bomb) < 600
    code, out, err, peak_kib = talk_with(tmp_path, bomb)
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [
        f"error: {tmp_path / 'models.yaml'} expands to more than 10000 values through YAML aliases. "
        "write the values out; a config needs no aliases"
    ]
    assert peak_kib - baseline_kib < 8 * 1024, (baseline_kib, peak_kib)


def test_a_big_value_below_the_bound_is_printed_as_a_short_preview(tmp_path):
    _, _, _, baseline_kib = talk_with(tmp_path, b"memory: lots\n")
    code, out, err, peak_kib = talk_with(tmp_path, alias_bomb(levels=3) + b"\nvad:\n  threshold: " + b"9" * 1000 + b"\n  min_speech_ms: " + b"x" * 100_000 + b"\n")
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[0] == f"error: invalid configuration (fix {tmp_path / 'models.yaml'})"
    assert lines[1].startswith("  • a0: unknown key")
    model = next(line for line in lines if "llm.model" in line)
    assert model.startswith("  • llm.model: must be a string, got [[['lol', 'lol', 'lol', 'lol', ...], ['lol',")
    threshold = next(line for line in lines if "vad.threshold" in line)
    assert threshold == "  • vad.threshold: must be in (0, 1), got <an integer of 3322 bits>"
    speech = next(line for line in lines if "vad.min_speech_ms" in line)
    assert speech == "  • vad.min_speech_ms: must be an integer, got '" + "x" * 21 + "..." + "x" * 22 + "'"
    assert max(len(line) for line in lines) < 400 and len(err) < 4000
    assert peak_kib - baseline_kib < 8 * 1024


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("&a [*a]\n", "holds a value that contains itself (a recursive alias). remove the alias"),
        ("[" * 100 + "]" * 100 + "\n", "nests lists or mappings more than 32 deep (line 1)"),
        ("created: 2024-13-45\n", "holds a value YAML cannot convert: month must be in 1..12"),
        ("seed: " + "9" * 5000 + "\n", "holds a value YAML cannot convert: Exceeds the limit (4300 digits)"),
        ("a: 1\n\tb: 2\n", "is not valid YAML at line 2: found character '\\t' that cannot start any token"),
        ("- just\n- a list\n", "must hold a mapping at the top level, got ['just', 'a list']"),
    ],
)
def test_odd_yaml_is_one_line(tmp_path, text, message):
    code, _, err, _ = talk_with(tmp_path, text.encode())
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_a_folder_given_as_config_says_it_is_a_folder(tmp_path):
    code, _, err, _ = run_cli(tmp_path, "talk", "--config", str(tmp_path), "--text")
    assert code == 2
    assert err.strip() == f"error: config {tmp_path} is a folder, not a file. point --config at a models.yaml file"
    env = talk_env(tmp_path)
    env["SISYPHUS_CONFIG"] = str(tmp_path / "nope.yaml")
    code, _, err, _ = run_cli(tmp_path, "voices", "list", env=env)
    assert code == 2
    assert err.strip() == (
        f"error: config file {tmp_path / 'nope.yaml'} does not exist. point SISYPHUS_CONFIG at an existing models.yaml"
    )


def test_an_empty_section_keeps_its_defaults(tmp_path):
    """`llm:` with every key commented out is the defaults, not 'must be a mapping, got None'."""
    (tmp_path / "models.yaml").write_text("llm:\n#  model: x\nvad:\n")
    code, out, err, _ = run_cli(tmp_path, "voices", "list", "--json", "--config", str(tmp_path / "models.yaml"))
    assert "must be a mapping" not in err and "invalid configuration" not in err
    assert code == 0, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--llm-model", ""], "llm.model: must not be empty, got ''"),
        (["--llm-model", "   "], "llm.model: must not be empty, got '   '"),
        (["--llm-url", "localhost:11434"], "llm.base_url: must be an http:// or https:// URL with a host"),
        (["--llm-url", "ftp://user:secret@host/v1"], "got 'ftp://***@host/v1'"),
        (["--voice", ""], "voice.default: must not be empty"),
    ],
)
def test_values_that_would_fail_every_turn_are_refused_at_start(tmp_path, args, message):
    code, _, err, _ = run_cli(tmp_path, "talk", "--text", *args)
    assert code == 2, err
    assert message in err and "secret" not in err


@pytest.mark.parametrize("folder", ["C:\\models\\asr", "D:/models/asr", ".\\models\\asr"])
def test_a_windows_model_path_is_a_missing_folder_not_a_bad_repo_id(tmp_path, folder):
    (tmp_path / "models.yaml").write_text(f"models:\n  asr: '{folder}'\n", encoding="utf-8")
    code, out, err, _ = run_cli(tmp_path, "models", "list", "--config", str(tmp_path / "models.yaml"))
    asr = next(line for line in out.splitlines() if line.startswith("model asr"))
    assert f"model folder {folder} does not exist" in asr and "fix the path in models.yaml" in asr, asr
    assert "Hub repo id" not in out
