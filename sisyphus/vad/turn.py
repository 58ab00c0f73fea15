"""Semantic end of turn: Smart Turn v3.2 says whether the speech so far is a finished turn.

Silence alone either cuts people off mid-thought or waits too long. Smart Turn (BSD-2,
about 8 M parameters, a Whisper-style encoder with a classifier head) hears the last 8 s
of the turn and returns the probability that the speaker has finished; the endpointer
asks it after a short silence and ends the turn at once when it says so, or waits longer
when it says not (see `sisyphus.vad.endpointer`).

The weights are the int8 ONNX file that ships inside the `pipecat-ai` wheel; it is found
on disk without importing pipecat, and run with onnxruntime on one thread, so nothing is
downloaded at run time and no other pipecat code runs. Input: Whisper log-mel features
(`sisyphus.vad.features`) of shape (1, 80, 800); output: one probability.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Protocol

import numpy as np

from sisyphus.errors import ModelError
from sisyphus.vad.features import log_mel_features

log = logging.getLogger(__name__)

PACKAGE = "pipecat"
# Where the pipecat-ai wheel keeps the CPU (int8) model, relative to the `pipecat` package.
MODEL_PATH_IN_PACKAGE = "audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
INPUT_NAME = "input_features"
INSTALL_HINT = "install it with `pip install pipecat-ai` (Python 3.11+), or set vad.turn_model: none"


class TurnModel(Protocol):
    """Anything that scores 16 kHz speech for being a finished turn (a test double needs no base class)."""

    def complete_probability(self, samples_16k: np.ndarray) -> float: ...


def smart_turn_path() -> Path:
    """The packaged ONNX file; ModelError when pipecat-ai is not installed or lacks it."""
    spec = importlib.util.find_spec(PACKAGE)  # finds the package without running its __init__
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / MODEL_PATH_IN_PACKAGE
        if path.is_file():
            return path
    where = f"pipecat at {locations[0]} has no {MODEL_PATH_IN_PACKAGE}" if locations else "pipecat-ai is not installed"
    raise ModelError(f"the Smart Turn model is missing: {where}", INSTALL_HINT)


class SmartTurn:
    """Smart Turn v3.2 on onnxruntime. Not thread-safe: one caller (the VAD thread) at a time."""

    def __init__(self, path: Path | None = None, *, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelError("onnxruntime is not installed, so Smart Turn cannot run", INSTALL_HINT) from exc
        self.path = Path(path) if path is not None else smart_turn_path()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # its warnings are about graph rewrites, not our use
        try:
            self._session = ort.InferenceSession(str(self.path), sess_options=options,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise ModelError(f"cannot load the Smart Turn model {self.path}: {exc}", INSTALL_HINT) from exc

    def complete_probability(self, samples_16k: np.ndarray) -> float:
        """Probability in [0, 1] that the speech in `samples_16k` (its last 8 s) is a finished turn."""
        return self.infer_features(log_mel_features(samples_16k)[np.newaxis])

    def infer_features(self, features: np.ndarray) -> float:
        """The model alone on ready features of shape (1, 80, 800) (the bench times the parts apart)."""
        (output,) = self._session.run(None, {INPUT_NAME: features})
        return float(np.asarray(output).reshape(-1)[0])


def load_turn_model(name: str) -> TurnModel | None:
    """The model `vad.turn_model` names: a SmartTurn for "smart-turn", None for "none"."""
    if name == "none":
        return None
    if name == "smart-turn":
        return SmartTurn()
    raise ModelError(f"unknown turn model {name!r}; valid: smart-turn, none", "fix vad.turn_model")
