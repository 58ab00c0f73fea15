"""Device/dtype selection and the CUDA diagnosis, on whatever machine runs the tests."""

from __future__ import annotations

import mmap

import numpy as np
import pytest
import torch

from sisyphus.errors import ConfigError
from sisyphus.runtime.device import _driver_present, auto_dtype, cuda_status, pick_device, pick_dtype
from sisyphus.runtime.memory import memory_snapshot

needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the diagnosis without a usable GPU")


@needs_no_cuda
def test_cuda_status_explains_why_and_what_to_install() -> None:
    status = cuda_status()
    assert status.available is False
    assert status.torch_version == torch.__version__
    assert status.device_name is None and status.capability is None
    if torch.version.cuda is None:  # the CPU wheel this project's CI installs
        assert status.cuda_version is None
        assert "CPU-only build" in status.reason
        base = torch.__version__.split("+")[0]
        if _driver_present():
            assert f"pip install torch=={base}+cu128 -i https://download.pytorch.org/whl/cu128" in status.fix
        else:  # no NVIDIA GPU: a CUDA build would not help, so none is advised
            assert "no NVIDIA driver found" in status.reason and status.fix == ""
    else:  # a CUDA wheel on a machine without a usable GPU
        assert status.cuda_version == torch.version.cuda
        assert ("driver" in status.reason or "GPU" in status.reason) and status.fix
    line = status.describe()
    assert line.startswith("CUDA unavailable: ") and status.reason in line and "\n" not in line


@needs_no_cuda
def test_device_selection_without_cuda() -> None:
    assert pick_device("auto") == "cpu"
    assert pick_device("CPU") == "cpu"
    for spec in ("cuda", "cuda:1"):
        with pytest.raises(ConfigError) as caught:
            pick_device(spec)
        assert cuda_status().reason in caught.value.message
        assert "--device cpu" in caught.value.hint


@pytest.mark.cuda
def test_device_selection_with_cuda() -> None:
    status = cuda_status()
    assert status.available and status.device_name and status.capability and status.cuda_version
    assert pick_device("auto") == "cuda:0" and pick_device("cuda") == "cuda:0"
    with pytest.raises(ConfigError, match="CUDA device"):
        pick_device(f"cuda:{status.device_count}")
    assert pick_dtype("cuda:0", "auto") is auto_dtype(status.capability) in (torch.bfloat16, torch.float16)
    assert "compute" in status.describe()


def test_bad_device_spec_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="must be auto, cpu, cuda or cuda:N, got 'tpu'"):
        pick_device("tpu")


@pytest.mark.parametrize(
    ("spec", "dtype"),
    [("auto", torch.float32), ("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)],
)
def test_dtype_selection_on_cpu(spec: str, dtype: torch.dtype) -> None:
    assert pick_dtype("cpu", spec) is dtype


def test_bad_dtype_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="dtype: must be auto, bf16, fp16 or fp32, got 'int8'"):
        pick_dtype("cpu", "int8")


def test_memory_snapshot_tracks_rss() -> None:
    before = memory_snapshot()
    # 200 MB of fresh anonymous pages, every one touched (a malloc'd block may reuse pages
    # an earlier test freed but the heap kept resident, and then RSS does not move).
    pages = mmap.mmap(-1, 200 * 1024 * 1024)
    block = np.frombuffer(pages, dtype=np.float64)
    block[:] = 1.0
    after = memory_snapshot()
    assert before.rss_bytes > 10 * 1024 * 1024
    assert after.rss_bytes - before.rss_bytes >= 150 * 1024 * 1024
    assert float(block[-1]) == 1.0
    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        assert (after.gpu_allocated_bytes, after.gpu_reserved_bytes, after.gpu_total_bytes) == (None, None, None)
        assert after.describe() == f"RSS {after.rss_bytes / 1e9:.1f} GB"


@pytest.mark.parametrize(
    ("capability", "dtype"),
    [
        (None, torch.float32),  # the CPU
        ((6, 1), torch.float16),  # Pascal: torch 2.11 calls its emulated bf16 "supported"
        ((7, 0), torch.float16),  # V100
        ((7, 5), torch.float16),  # T4, RTX 20xx
        ((8, 0), torch.bfloat16),  # A100
        ((8, 6), torch.bfloat16),  # RTX 30xx
        ((8, 9), torch.bfloat16),  # RTX 40xx, L4
        ((9, 0), torch.bfloat16),  # H100, H200
        ((12, 0), torch.bfloat16),  # RTX 50xx
    ],
)
def test_auto_dtype_is_bf16_only_on_native_bf16_cards(capability, dtype) -> None:
    assert auto_dtype(capability) is dtype


class FakeCards:
    """Two cards of different generations, as torch.cuda would describe them; records who was asked."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def get_device_capability(self, index: int | None = None) -> tuple[int, int]:
        self.asked.append(index)  # type: ignore[arg-type]
        return {0: (7, 5), 1: (9, 0)}[index]  # type: ignore[index]


def test_auto_dtype_asks_the_chosen_card_not_the_current_one(monkeypatch, caplog) -> None:
    cards = FakeCards()
    monkeypatch.setattr(torch.cuda, "get_device_capability", cards.get_device_capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # emulated bf16 counts in torch 2.11
    assert pick_dtype("cuda:1", "auto") is torch.bfloat16
    assert pick_dtype("cuda:0", "auto") is torch.float16
    assert pick_dtype("cuda", "auto") is torch.float16
    assert cards.asked == [1, 0, 0]
    with caplog.at_level("WARNING", logger="sisyphus.runtime.device"):
        assert pick_dtype("cuda:0", "bf16") is torch.bfloat16  # asked for explicitly: honoured, with a warning
        assert pick_dtype("cuda:1", "bf16") is torch.bfloat16
    assert [r.getMessage() for r in caplog.records] == [
        "bf16 on cuda:0 (compute 7.5) is emulated and slow; fp16 (or auto) runs natively"
    ]
