"""Voice storage: names, atomic writes, interrupted writes, corrupt folders, deletion."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from sisyphus.errors import VoiceError
from sisyphus.voices.library import PROMPT_FILE, VoiceLibrary
from tests.voices.helpers import snapshot

PRESETS = ["vivian", "ryan", "eric"]


def writer(payload: bytes = b"prompt", model: str = "tiny-base"):
    def write(path: Path) -> str:
        path.write_bytes(payload)
        return model

    return write


def tone(seconds: float = 4.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(seconds * 24000))).astype(np.float32)


@pytest.fixture
def library(tmp_path: Path) -> VoiceLibrary:
    lib = VoiceLibrary(tmp_path / "voices", PRESETS, {"eric": "sichuan_dialect"})
    lib.add("alice", tone(seed=1), "Hello, I am Alice.", "english", writer(b"alice"))
    return lib


def test_add_stores_the_voice(library: VoiceLibrary) -> None:
    samples = tone(5.0, seed=2)
    info = library.add("bob", samples, None, "auto", writer(b"bob-prompt", "Qwen3-TTS-tiny-Base"),
                       source_sha256="ab" * 32)
    assert (info.name, info.kind, info.language, info.transcript) == ("bob", "cloned", "auto", None)
    assert info.x_vector_only and info.needs == "tts_base"
    assert info.model == "Qwen3-TTS-tiny-Base" and info.source_sha256 == "ab" * 32
    assert info.audio_seconds == 5.0
    assert info.created.endswith("+00:00")
    stored, rate = sf.read(info.reference_path, dtype="float32")
    assert rate == 24000 and np.array_equal(stored, samples)
    assert info.prompt_path.read_bytes() == b"bob-prompt"
    record = yaml.safe_load((info.path / "voice.yaml").read_text())
    assert record["name"] == "bob" and record["transcript"] is None
    assert library.get("bob") == info


def test_source_hash_defaults_to_the_samples(library: VoiceLibrary) -> None:
    samples = tone(seed=3)
    info = library.add("carol", samples, "hi", "english", writer())
    assert info.source_sha256 == hashlib.sha256(samples.tobytes()).hexdigest()


def test_list_shows_cloned_then_presets(library: VoiceLibrary) -> None:
    voices, problems = library.list()
    assert problems == []
    assert [(v.name, v.kind, v.needs, v.language) for v in voices] == [
        ("alice", "cloned", "tts_base", "english"),
        ("vivian", "preset", "tts_custom", "auto"),
        ("ryan", "preset", "tts_custom", "auto"),
        ("eric", "preset", "tts_custom", "sichuan_dialect"),
    ]
    assert library.get("Vivian").name == "vivian"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../evil", "invalid voice name '../evil'"),
        ("a/b", "invalid voice name 'a/b'"),
        ("a\\b", "invalid voice name 'a\\\\b'"),
        ("", "invalid voice name ''"),
        (".hidden", "invalid voice name '.hidden'"),
        ("has space", "invalid voice name 'has space'"),
        ("x" * 65, f"invalid voice name '{'x' * 65}'"),
        ("Vivian", "voice name 'Vivian' is taken by the preset speaker 'vivian'"),
        ("alice", "a voice named 'alice' already exists"),
        ("ALICE", "a voice named 'alice' already exists"),
    ],
)
def test_bad_names_leave_the_library_unchanged(library: VoiceLibrary, name: str, message: str) -> None:
    before = snapshot(library.folder)
    with pytest.raises(VoiceError) as caught:
        library.add(name, tone(), "text", "auto", writer())
    assert caught.value.message == message
    assert snapshot(library.folder) == before


def test_force_replaces_only_the_exact_name(library: VoiceLibrary) -> None:
    before = snapshot(library.folder)
    with pytest.raises(VoiceError, match="a voice named 'alice' already exists") as caught:
        library.add("Alice", tone(), "text", "auto", writer(), force=True)
    assert caught.value.hint.startswith("use that exact name")
    assert snapshot(library.folder) == before


def test_force_replaces_a_voice(library: VoiceLibrary) -> None:
    info = library.add("alice", tone(seed=9), "New words.", "german", writer(b"new"), force=True)
    assert info.transcript == "New words." and info.language == "german"
    assert (library.folder / "alice" / PROMPT_FILE).read_bytes() == b"new"
    assert sorted(p.name for p in library.folder.iterdir()) == ["alice"]


class Boom(RuntimeError):
    pass


def failing_writer(exc: BaseException):
    def write(path: Path) -> str:
        path.write_bytes(b"half a prompt")
        raise exc

    return write


@pytest.mark.parametrize("exc", [Boom("disk on fire"), KeyboardInterrupt()])
@pytest.mark.parametrize("force", [False, True])
def test_interrupted_add_leaves_nothing_behind(library: VoiceLibrary, exc: BaseException, force: bool) -> None:
    before = snapshot(library.folder)
    name = "alice" if force else "dave"
    with pytest.raises(type(exc)):
        library.add(name, tone(seed=4), "words", "auto", failing_writer(exc), force=force)
    assert snapshot(library.folder) == before
    assert library.list() == VoiceLibrary(library.folder, PRESETS, {"eric": "sichuan_dialect"}).list()
    assert [v.name for v in library.list()[0] if v.kind == "cloned"] == ["alice"]


def test_interrupted_add_into_a_new_folder_creates_nothing(tmp_path: Path) -> None:
    lib = VoiceLibrary(tmp_path / "new" / "voices", PRESETS)
    with pytest.raises(KeyboardInterrupt):
        lib.add("dave", tone(), None, "auto", failing_writer(KeyboardInterrupt()))
    assert not (tmp_path / "new" / "voices").exists()


def test_list_during_a_clone_never_shows_the_half_voice(library: VoiceLibrary) -> None:
    seen: list[tuple[list[str], list[str]]] = []

    def write(path: Path) -> str:
        path.write_bytes(b"prompt")
        voices, problems = library.list()
        seen.append(([v.name for v in voices if v.kind == "cloned"], problems))
        return "tiny-base"

    library.add("erin", tone(), "hi", "auto", write)
    assert seen == [(["alice"], [])]
    assert [v.name for v in library.list()[0] if v.kind == "cloned"] == ["alice", "erin"]


def corrupt(folder: Path, how: str) -> None:
    voice = folder / "alice"
    record = yaml.safe_load((voice / "voice.yaml").read_text())
    if how == "no_yaml":
        (voice / "voice.yaml").unlink()
    elif how == "bad_yaml":
        (voice / "voice.yaml").write_text("name: [unclosed\n")
    elif how == "wrong_type":
        record["audio_seconds"] = "long"
        (voice / "voice.yaml").write_text(yaml.safe_dump(record))
    elif how == "renamed":
        os.rename(voice, folder / "alicia")
    elif how == "no_prompt":
        (voice / PROMPT_FILE).unlink()


@pytest.mark.parametrize(
    ("how", "problem", "folder"),
    [
        ("no_yaml", "voice.yaml is missing", "alice"),
        ("bad_yaml", "voice.yaml is not valid YAML at line 2: expected ',' or ']', but got '<stream end>'", "alice"),
        ("wrong_type", "voice.yaml: 'audio_seconds' has the wrong type ('long')", "alice"),
        ("renamed", "voice.yaml names 'alice', not the folder's name", "alicia"),
        ("no_prompt", "prompt.safetensors is missing", "alice"),
    ],
)
def test_corrupt_voices_are_reported_and_skipped(library: VoiceLibrary, how: str, problem: str, folder: str) -> None:
    library.add("bob", tone(seed=5), "hi", "auto", writer())
    corrupt(library.folder, how)
    voices, problems = library.list()
    assert [v.name for v in voices if v.kind == "cloned"] == ["bob"]
    assert problems == [f"{library.folder / folder}: {problem}; delete the folder or clone it again"]
    with pytest.raises(VoiceError, match=f"voice '{folder}' is damaged"):
        library.get(folder)
    library.delete(folder)  # a damaged voice can still be removed
    assert library.list()[1] == []


def test_a_folder_named_like_a_preset_is_reported(library: VoiceLibrary) -> None:
    lib = VoiceLibrary(library.folder, ["alice", *PRESETS])
    voices, problems = lib.list()
    assert [v.name for v in voices if v.kind == "cloned"] == []
    assert problems == [
        f"{library.folder / 'alice'}: name clashes with the preset speaker 'alice'; "
        "delete the folder or clone it again"
    ]


def test_delete(library: VoiceLibrary) -> None:
    library.add("bob", tone(seed=6), "hi", "auto", writer())
    library.delete("alice")
    assert sorted(p.name for p in library.folder.iterdir()) == ["bob"]
    with pytest.raises(VoiceError) as caught:
        library.delete("alice")
    assert caught.value.one_line() == "unknown voice 'alice'. valid voices: bob, vivian, ryan, eric"
    with pytest.raises(VoiceError, match="'ryan' is a preset speaker of the CustomVoice model"):
        library.delete("Ryan")
    with pytest.raises(VoiceError, match="unknown voice '../bob'"):
        library.delete("../bob")


def test_get_unknown_lists_valid_names(library: VoiceLibrary) -> None:
    with pytest.raises(VoiceError) as caught:
        library.get("zoe")
    assert caught.value.hint == "valid voices: alice, vivian, ryan, eric"


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_leftovers_of_a_dead_writer_are_undone(library: VoiceLibrary) -> None:
    pid = dead_pid()
    half = library.folder / f".tmp-frank-{pid}-abcd1234"
    half.mkdir()
    (half / "reference.wav").write_bytes(b"partial")
    os.rename(library.folder / "alice", library.folder / f".old-alice-{pid}-0000ffff")
    mine = library.folder / f".tmp-gina-{os.getpid()}-00000000"  # a live writer's: kept
    mine.mkdir()
    assert [v.name for v in library.list()[0] if v.kind == "cloned"] == []
    library.add("bob", tone(seed=7), "hi", "auto", writer())
    names = sorted(p.name for p in library.folder.iterdir())
    assert names == [mine.name, "alice", "bob"]
    assert library.get("alice").transcript == "Hello, I am Alice."


def test_replace_prompt_records_the_new_model(library: VoiceLibrary) -> None:
    before = library.get("alice")
    after = library.replace_prompt("alice", writer(b"recomputed", "other-base"))
    assert after.model == "other-base" and before.model == "tiny-base"
    assert after.prompt_path.read_bytes() == b"recomputed"
    assert (after.created, after.transcript) == (before.created, before.transcript)
    assert sorted(p.name for p in library.folder.iterdir()) == ["alice"]
