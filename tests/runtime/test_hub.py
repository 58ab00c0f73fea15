"""Finding models without the network, and pull's handling of folders and dead endpoints."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save as save_bytes
from safetensors.numpy import save_file

from sisyphus.errors import ModelError
from sisyphus.hub import MODEL_KEYS, locate, pull
from tests.runtime.fake_hub import FakeRepo, fake_hub

REPO = Path(__file__).resolve().parents[2]


def _model_folder(folder: Path, *, weights: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "tiny"}))
    if weights:
        save_file({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, str(folder / "model.safetensors"))
    return folder


def test_model_keys_name_the_config_fields() -> None:
    assert MODEL_KEYS == {"asr": "models.asr", "tts-base": "models.tts_base", "tts-custom": "models.tts_custom"}


def test_locate_and_pull_accept_a_complete_local_folder(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path / "asr")
    assert locate(str(folder), None) == folder
    assert pull(str(folder), None, progress=False) == folder  # validated, nothing downloaded


def test_folder_without_weights_is_named(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path / "tts", weights=False)
    with pytest.raises(ModelError) as caught:
        locate(str(folder), None, key="tts-base")
    assert caught.value.message == f"model folder {folder} holds no *.safetensors weights"
    assert "sisyphus models pull tts-base" in caught.value.hint


def test_missing_shard_of_an_index_is_named(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path / "big")
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelError, match="lacks weight shards: model-00002-of-00002.safetensors"):
        locate(str(folder), None)


def test_missing_local_path_is_not_mistaken_for_a_repo(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        locate(str(tmp_path / "models" / "asr"), None)


def test_uncached_repo_names_the_pull_command(tmp_path: Path) -> None:
    """In a child process: huggingface_hub reads HF_HUB_OFFLINE once, when imported."""
    script = (
        "from sisyphus.hub import locate\n"
        "from sisyphus.errors import ModelError\n"
        "try:\n"
        "    locate('zai-org/GLM-ASR-Nano-2512', None, key='asr')\n"
        "except ModelError as exc:\n"
        "    print(exc.one_line())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "model zai-org/GLM-ASR-Nano-2512 is not downloaded. run `sisyphus models pull asr`"
    assert not list((tmp_path / "hf").rglob("*.safetensors"))  # nothing was fetched


def _fake_cached_snapshot(hub_cache: Path, repo_id: str, *, weights: bool) -> Path:
    """The layout huggingface_hub writes: refs/main → snapshots/<sha>/ with the files."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = hub_cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return _model_folder(repo / "snapshots" / commit, weights=weights)


def test_locate_finds_a_cached_snapshot_via_hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    snapshot = _fake_cached_snapshot(tmp_path / "hf" / "hub", "Qwen/Tiny-TTS", weights=True)
    assert locate("Qwen/Tiny-TTS", None) == snapshot
    explicit = _fake_cached_snapshot(tmp_path / "elsewhere", "Qwen/Tiny-TTS", weights=False)
    with pytest.raises(ModelError, match=f"model folder {explicit} holds no"):
        locate("Qwen/Tiny-TTS", str(tmp_path / "elsewhere"))  # models.cache_dir wins over HF_HOME


def test_pull_from_an_unreachable_endpoint_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port on 127.0.0.1 that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(ModelError) as caught:
        pull("org/model", str(tmp_path / "cache"), progress=False)
    assert caught.value.message == f"cannot download org/model: http://127.0.0.1:{port} is unreachable"
    assert "HF_ENDPOINT" in caught.value.hint


# --- pull against a fake Hub on 127.0.0.1 (tests/runtime/fake_hub.py) ---


def _tiny_repo(repo_id: str = "org/tiny-tts") -> FakeRepo:
    weights = save_bytes({"w": np.arange(300_000, dtype=np.float32)})  # 1.2 MB
    return FakeRepo(
        repo_id,
        {
            "config.json": b'{"model_type": "tiny"}',
            "model.safetensors": weights,
            "speech_tokenizer/config.json": b"{}",
            "speech_tokenizer/model.safetensors": save_bytes({"c": np.ones(10, dtype=np.float32)}),
        },
    )


def _file_gets(repo: FakeRepo) -> list[str]:
    return sorted(path.split("/resolve/", 1)[1].split("/", 1)[1] for method, path, _ in repo.requests if "/resolve/" in path)


def test_pull_downloads_from_hf_endpoint_and_locate_then_works_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _tiny_repo()
    cache = str(tmp_path / "cache")
    with fake_hub(repo) as endpoint:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        folder = pull(repo.repo_id, cache, progress=False)
    for name, data in repo.files.items():
        assert (folder / name).read_bytes() == data
    assert _file_gets(repo) == sorted(repo.files)
    assert locate(repo.repo_id, cache) == folder  # the server is gone: found in the cache


def test_dropped_connection_is_retried_and_a_second_pull_skips_finished_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _tiny_repo()
    cache = str(tmp_path / "cache")
    with fake_hub(repo) as endpoint:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        repo.cut_after_bytes["model.safetensors"] = [400_000] * 6  # more drops than it retries
        with pytest.raises(ModelError) as caught:
            pull(repo.repo_id, cache, progress=False)
        assert "run the pull again" in caught.value.hint
        repo.requests.clear()
        repo.cut_after_bytes["model.safetensors"] = [400_000]  # one drop: retried within the pull
        folder = pull(repo.repo_id, cache, progress=False)
    assert (folder / "model.safetensors").read_bytes() == repo.files["model.safetensors"]
    gets = _file_gets(repo)
    assert "config.json" not in gets  # finished files are not fetched again
    assert gets.count("model.safetensors") == 2  # the dropped attempt and its retry


def test_pull_of_an_unknown_repo_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with fake_hub(_tiny_repo()) as endpoint:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        with pytest.raises(ModelError) as caught:
            pull("org/nope", str(tmp_path / "cache"), progress=False)
    assert caught.value.message == f"org/nope was not found on {endpoint}"
