"""Silero VAD on onnxruntime: the same model the endpointer runs, without importing torch.

When ASR and TTS both run on remote servers, Silero is the only model left in the
process, and torch would cost more to import (seconds, ~250 MB) than everything else
`talk` does at start. The silero-vad wheel ships the model as ONNX too; this runs it
with the wheel's own streaming convention: 512-sample frames at 16 kHz, each preceded by
the last 64 samples of the previous one, and a recurrent state carried between calls.
The file is located without importing the `silero_vad` package (its `__init__` imports
torch). The endpointer calls `score(frame)` on it instead of the TorchScript model.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import numpy as np

from sisyphus.errors import ModelError
from sisyphus.frames import MIC_RATE_HZ

log = logging.getLogger(__name__)

CONTEXT_SAMPLES = 64  # at 16 kHz
STATE_SHAPE = (2, 1, 128)
MODEL_FILE = "silero_vad.onnx"


def model_path() -> Path:
    """The ONNX model inside the installed silero-vad wheel."""
    spec = importlib.util.find_spec("silero_vad")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "data" / MODEL_FILE
        if path.is_file():
            return path
    raise ModelError(f"the silero-vad package has no data/{MODEL_FILE}", "reinstall it: pip install 'silero-vad>=6,<7'")


class SileroOnnx:
    """One stream's Silero VAD: `score(frame)` per 512-sample frame, `reset_states()` between streams."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._sr = np.array(MIC_RATE_HZ, dtype=np.int64)
        self.reset_states()

    @classmethod
    def load(cls) -> SileroOnnx:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # one 32 ms frame at a time: threads only add overhead
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(model_path()), sess_options=options,
                                               providers=["CPUExecutionProvider"])
        return cls(session)

    def reset_states(self) -> None:
        self._state = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros((1, CONTEXT_SAMPLES), dtype=np.float32)

    def score(self, frame: np.ndarray) -> float:
        """Speech probability of one 512-sample float32 frame, in order after the previous one."""
        x = np.concatenate([self._context, np.asarray(frame, dtype=np.float32).reshape(1, -1)], axis=1)
        prob, self._state = self._session.run(None, {"input": x, "state": self._state, "sr": self._sr})
        self._context = x[:, -CONTEXT_SAMPLES:]
        return float(prob[0, 0])
