"""Reading the card's memory without CUDA: the NVML index mapping and the nvidia-smi reading.

The process figures themselves need a GPU (the bench's JSON from a GPU run carries them);
what can be checked here is that the baseline reading finds the right card and parses
what nvidia-smi prints (a stand-in `nvidia-smi` on PATH that answers as the real one does).
"""

from __future__ import annotations

import os
import stat

from sisyphus.runtime import memory


def test_cuda_indices_map_to_nvml_ones_through_cuda_visible_devices(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert memory._nvml_index(1) == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    assert [memory._nvml_index(i) for i in (0, 1)] == [3, 1]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-5f1c")  # a UUID: NVML order is unknown, keep the index
    assert memory._nvml_index(0) == 0


def test_the_baseline_comes_from_nvidia_smi_when_nvml_is_missing(tmp_path, monkeypatch):
    smi = tmp_path / "nvidia-smi"
    smi.write_text('#!/bin/sh\n[ "$4" = 2 ] && echo "  812 " || echo "1"\n')  # the index follows -i, 4th
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")
    monkeypatch.setitem(__import__("sys").modules, "pynvml", None)  # no NVML binding
    assert memory.device_used_bytes("cuda:0") == 812 * 1024 * 1024
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed'\nexit 9\n")
    assert memory.device_used_bytes("cuda:0") is None
