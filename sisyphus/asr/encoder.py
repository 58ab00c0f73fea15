"""GLM-ASR's audio encoder as one CUDA graph, and the prompt embeddings built from its output.

The processor pads every utterance to the 30 s window the model was trained on (3000 mel
frames) and the encoder attends over the whole window without a mask, so padding changes
the valid frames' outputs: a shorter window would not give the official result. But the
fixed shape makes the encoder (32 layers, several hundred kernels launched from Python)
ideal for one CUDA graph: the same eager kernels, captured once and replayed, so its
output is bitwise the eager one.

`prompt_embeddings` is the first half of the model's own forward (embed the prompt ids,
put the valid audio tokens where the audio placeholders are), so the language model can
then run on `inputs_embeds` exactly as the forward would have run it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

log = logging.getLogger(__name__)


def encoder_and_projector(model: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """`get_audio_features` without its last, data-dependent step (picking the valid tokens)."""
    base = model if hasattr(model, "audio_tower") else model.model  # transformers 5.0 / later 5.x
    width = model.config.audio_config.intermediate_size

    def encode(features: torch.Tensor) -> torch.Tensor:
        hidden = base.audio_tower(features, return_dict=True).last_hidden_state
        return base.multi_modal_projector(hidden.reshape(features.shape[0], -1, width))

    return encode


def prompt_embeddings(model: Any, input_ids: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    """The prompt's input embeddings with the encoder's output `audio` (1, window tokens, width) in place.

    As the model's forward builds them: the first n window tokens fill the n audio placeholders.
    """
    text = model.get_input_embeddings()(input_ids)
    placeholders = input_ids == model.config.audio_token_id
    count = int(placeholders.sum())
    return text.masked_scatter(placeholders.unsqueeze(-1), audio[0, :count].to(text.dtype))


class EncoderGraph:
    """The encoder + projector over one fixed features shape, captured as a CUDA graph on first use."""

    def __init__(self, model: Any, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> None:
        self.encode = encoder_and_projector(model)
        self.shape = tuple(shape)
        self.features = torch.zeros(self.shape, dtype=dtype, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.output: torch.Tensor | None = None

    def fits(self, features: torch.Tensor) -> bool:
        return tuple(features.shape) == self.shape and features.dtype == self.features.dtype

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        """The encoder's output for `features`; valid until the next call (the graph reuses its memory)."""
        self.features.copy_(features)
        if self.graph is None:
            self._capture()
        assert self.graph is not None and self.output is not None
        self.graph.replay()
        return self.output

    def _capture(self) -> None:
        side = torch.cuda.Stream(self.features.device)
        side.wait_stream(torch.cuda.current_stream(self.features.device))
        with torch.cuda.stream(side):  # warm-up runs, as torch.cuda.graph requires
            for _ in range(2):
                self.encode(self.features)
        torch.cuda.current_stream(self.features.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.output = self.encode(self.features)
        self.graph = graph
        log.debug("ASR encoder captured as a CUDA graph for features %s", self.shape)
