"""`sisyphus voices list / delete` and every refused `clone`, through typer's CliRunner.

These need no model weights beyond the tiny CustomVoice checkpoint's config (for the
preset speakers): a refused clone must fail before any model loads and leave the
library exactly as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.voices.helpers import PRESETS, edit_config, run, snapshot, stored

def test_list_table_marks_the_default(config_file: Path, tiny_custom: Path, tiny_base: Path) -> None:
    stored(config_file, "alice", 6.5)
    stored(config_file, "bob", 4.0, transcript=None)
    result = run(config_file, "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "LANGUAGE", "LENGTH", "CREATED", "NEEDS"]
    rows = {line.split()[0] if not line.startswith("*") else line.split()[1]: line for line in lines[1:]}
    assert list(rows) == ["alice", "bob", *PRESETS]
    assert rows["alice"].split()[1:5] == ["cloned", "english", "6.5", "s"]
    assert "cloned (x-vector)" in rows["bob"] and "4.0 s" in rows["bob"]
    assert rows["vivian"].startswith("*") and not rows["ryan"].startswith("*")
    assert rows["eric"].split()[1:3] == ["preset", "sichuan_dialect"]
    assert rows["ryan"].endswith(f"tts_custom: {tiny_custom}")
    assert rows["alice"].endswith(f"tts_base: {tiny_custom.parent / 'base'}")
    assert result.stderr == ""


def test_list_json(config_file: Path, tiny_base: Path) -> None:
    stored(config_file, "alice", 6.5)
    result = run(config_file, "list", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["default"] == "vivian" and data["problems"] == []
    assert [v["name"] for v in data["voices"]] == ["alice", *PRESETS]
    alice = data["voices"][0]
    assert (alice["kind"], alice["language"], alice["seconds"], alice["transcript"]) == ("cloned", "english", 6.5, "Hi.")
    assert (alice["needs"], alice["prompt_model"], alice["default"]) == ("tts_base", "tiny-base", False)
    vivian = data["voices"][2]
    assert (vivian["kind"], vivian["needs"], vivian["default"], vivian["seconds"]) == ("preset", "tts_custom", True, None)


def test_list_reports_a_corrupt_voice_and_goes_on(config_file: Path) -> None:
    stored(config_file, "alice")
    stored(config_file, "bob")
    (config_file.parent / "my-voices" / "bob" / "voice.yaml").write_text("name: [unclosed\n")
    result = run(config_file, "list", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert [v["name"] for v in data["voices"]][:2] == ["alice", "serena"]
    assert data["problems"] == [
        f"{config_file.parent / 'my-voices' / 'bob'}: voice.yaml is not valid YAML at line 2: expected ',' or ']', but got '<stream end>'; "
        "delete the folder or clone it again"
    ]
    assert "warning: " in result.stderr and "bob" in result.stderr


def test_delete_asks_first(config_file: Path) -> None:
    stored(config_file, "alice")
    before = snapshot(config_file.parent / "my-voices")
    result = run(config_file, "delete", "alice", input="n\n")
    assert result.exit_code == 1
    assert "delete voice 'alice'" in result.stderr and "nothing deleted" in result.stderr
    assert snapshot(config_file.parent / "my-voices") == before
    result = run(config_file, "delete", "alice", input="y\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "deleted voice 'alice'"  # after the echoed answer
    assert list((config_file.parent / "my-voices").iterdir()) == []


def test_delete_with_yes_and_the_default_voice(config_file: Path) -> None:
    stored(config_file, "alice")
    edit_config(config_file, "voice.default", "alice")
    result = run(config_file, "delete", "alice", "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "deleted voice 'alice'",
        "'alice' was the default voice: `talk` now uses 'vivian'; set voice.default in models.yaml "
        "(or SISYPHUS_VOICE) to choose another",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["vivian", "--yes"], "error: 'vivian' is a preset speaker of the CustomVoice model and cannot be deleted. "
                              "only cloned voices can be deleted"),
        (["zoe", "--yes"], "error: unknown voice 'zoe'. valid voices: alice, " + ", ".join(PRESETS)),
    ],
)
def test_delete_refusals(config_file: Path, args: list[str], message: str) -> None:
    stored(config_file, "alice")
    before = snapshot(config_file.parent / "my-voices")
    result = run(config_file, "delete", *args)
    assert result.exit_code == 1
    assert result.stderr.strip() == message
    assert snapshot(config_file.parent / "my-voices") == before


CLONE_REFUSALS = [
    # Unreadable files: sisyphus.audio words these; the path must be named.
    (["--audio", "{missing}"], "{missing}"),
    (["--audio", "{empty}"], "{empty}"),
    (["--audio", "{corrupt}"], "{corrupt}"),
    (["--audio", "{silent}"], "error: no speech found in silent.wav. "
                              "use a recording of one person speaking clearly for 5-15 seconds"),
    (["--audio", "{short}"], "error: short.wav has only 1.0 s of speech, at least 3 s is needed. "
                             "use a recording of 5-15 s of speech"),
    (["--audio", "{long}"], "error: long.wav has 37.0 s of speech, at most 30 s is allowed. cut it to 5-15 s of speech"),
    (["--audio", "{quiet}"], "error: quiet.wav is too quiet (speech at -68 dBFS, at least -40 dBFS is needed). "
                             "record closer to the microphone or raise its gain"),
    (["--audio", "{clipped}"], "error: clipped.wav is clipped (9.13% of samples at full scale). "
                               "record again with a lower input gain"),
    (["--audio", "{wav22k}", "--text", "a", "--transcribe"],
     "error: --text and --transcribe cannot be used together. give the transcript or let GLM-ASR write it"),
    (["--audio", "{wav22k}", "--text", "  "], "error: --text is empty. pass what is said in the recording, or use --transcribe"),
    ([], "error: pass exactly one of --audio FILE and --record SECONDS. see `sisyphus voices clone --help`"),
    (["--audio", "{wav22k}", "--record", "5"],
     "error: pass exactly one of --audio FILE and --record SECONDS. see `sisyphus voices clone --help`"),
]


@pytest.mark.parametrize(("args", "message"), CLONE_REFUSALS, ids=lambda v: str(v)[:40])
def test_refused_clones_leave_the_library_unchanged(
    config_file: Path, tiny_base: Path, speech_files: dict[str, Path], args: list[str], message: str
) -> None:
    stored(config_file, "alice")
    paths = {k: str(v) for k, v in speech_files.items()} | {"missing": str(config_file.parent / "nope.wav")}
    before = snapshot(config_file.parent / "my-voices")
    result = run(config_file, "clone", "newvoice", *[a.format(**paths) for a in args])
    usage = any(word in message for word in ("--text", "--record"))
    assert result.exit_code == (2 if usage else 1), result.output  # option misuse is a ConfigError
    assert len(result.stderr.splitlines()) == 1, result.stderr
    if message.startswith("error: "):
        assert result.stderr.startswith(message.format(**paths))
    else:
        assert result.stderr.startswith("error: ") and message.format(**paths) in result.stderr
    assert snapshot(config_file.parent / "my-voices") == before


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../evil", "error: invalid voice name '../evil'. use 1-64 letters, digits, '_' or '-', "
                    "starting with a letter or digit"),
        ("a/b", "error: invalid voice name 'a/b'. use 1-64 letters, digits, '_' or '-', starting with a letter or digit"),
        ("Vivian", "error: voice name 'Vivian' is taken by the preset speaker 'vivian'. choose another name"),
        ("alice", "error: a voice named 'alice' already exists. pass --force to replace it, or choose another name"),
    ],
)
def test_refused_names(config_file: Path, speech_files: dict[str, Path], name: str, message: str) -> None:
    stored(config_file, "alice")
    before = snapshot(config_file.parent / "my-voices")
    result = run(config_file, "clone", name, "--audio", str(speech_files["wav22k"]), "--text", "words")
    assert result.exit_code == 1
    assert result.stderr.strip() == message
    assert snapshot(config_file.parent / "my-voices") == before


def test_clone_refuses_a_base_model_that_is_not_one(config_file: Path, tiny_custom: Path, speech_files) -> None:
    edit_config(config_file, "models.tts_base", str(tiny_custom))
    result = run(config_file, "clone", "fox", "--audio", str(speech_files["wav22k"]))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: models.tts_base ({tiny_custom}) is a custom_voice model, not a base model. "
        "set models.tts_base to a Qwen3-TTS ...-Base repo or folder"
    )
    assert snapshot(config_file.parent / "my-voices") == {}


def test_clone_without_the_base_model_says_so_first(config_file: Path, speech_files, tmp_path: Path) -> None:
    stored(config_file, "alice")
    before = snapshot(config_file.parent / "my-voices")
    edit_config(config_file, "models.tts_base", str(tmp_path / "absent"))
    result = run(config_file, "clone", "fox", "--audio", str(speech_files["silent"]))  # never read
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: model folder {tmp_path / 'absent'} does not exist. fix the path in models.yaml (or the flag)"
    )
    assert snapshot(config_file.parent / "my-voices") == before


def test_list_without_the_custom_voice_model(config_file: Path, tmp_path: Path, tiny_base: Path) -> None:
    stored(config_file, "alice")
    edit_config(config_file, "models.tts_custom", str(tmp_path / "absent"))
    edit_config(config_file, "voice.default", "alice")
    result = run(config_file, "list")
    assert result.exit_code == 0
    rows = [line.split()[:3] for line in result.stdout.splitlines()[1:]]
    assert rows[0] == ["*", "alice", "cloned"]
    assert [row[0] for row in rows[1:]] == PRESETS  # the official presets, from the packaged config
    assert all(line.endswith(f"tts_custom: {tmp_path / 'absent'} (not downloaded)") for line in result.stdout.splitlines()[2:])
    assert result.stderr.strip() == (
        f"note: model folder {tmp_path / 'absent'} does not exist (needed for the preset voices): "
        "fix the path in models.yaml (or the flag)"
    )


def test_say_refuses_to_write_over_a_reference_or_the_config(config_file: Path) -> None:
    stored(config_file, "alice")
    library = config_file.parent / "my-voices"
    before = snapshot(library), config_file.read_bytes()
    config_link = config_file.parent / "config.wav"
    config_link.symlink_to(config_file)
    for output, message in [
        (library / "alice" / "reference.wav", f"is inside the voice library ({library})"),
        (config_link, "is the same file as the config file"),
    ]:
        result = run(config_file, "say", "ryan", "Hello there.", "--output", str(output))
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], result.stderr
        assert (snapshot(library), config_file.read_bytes()) == before
