"""The talker: a decoder over (text + codec) embeddings that emits codebook 0 per frame.

`Qwen3TTSNet` holds every weight of the official checkpoint under the official names
(`talker.*`, `speaker_encoder.*`), so the safetensors file loads without renaming.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sisyphus.tts.qwen3.code_predictor import CodePredictor
from sisyphus.tts.qwen3.config import ModelConfig, TalkerConfig
from sisyphus.tts.qwen3.layers import KVCache, RMSNorm, Rotary, decoder_layers, run_layers, step_inputs


class TalkerModel(nn.Module):
    def __init__(self, cfg: TalkerConfig) -> None:
        super().__init__()
        self.layers = decoder_layers(cfg)
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.codec_embedding = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.text_embedding = nn.Embedding(cfg.text_vocab_size, cfg.text_hidden_size)
        self.rotary = Rotary(cfg.head_dim, cfg.rope_theta, cfg.mrope_section, cfg.mrope_interleaved)


class TextProjection(nn.Module):
    """Maps text-token embeddings into the talker's width (two linears with SiLU)."""

    def __init__(self, text_hidden: int, hidden: int) -> None:
        super().__init__()
        self.linear_fc1 = nn.Linear(text_hidden, text_hidden, bias=True)
        self.linear_fc2 = nn.Linear(text_hidden, hidden, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_fc2(F.silu(self.linear_fc1(x)))


class Talker(nn.Module):
    def __init__(self, cfg: TalkerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = TalkerModel(cfg)
        self.text_projection = TextProjection(cfg.text_hidden_size, cfg.hidden_size)
        self.codec_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.code_predictor = CodePredictor(cfg.predictor, cfg.hidden_size)

    def new_cache(self, capacity: int) -> KVCache:
        p = next(self.parameters())
        c = self.cfg
        return KVCache(c.num_layers, c.num_kv_heads, capacity, c.head_dim, p.dtype, p.device)

    def keep_text_embedding_on_host(self) -> None:
        """Move the text-token table to host memory: 151936 x 2048 rows (0.6 GB in bf16) of
        which a prompt reads a few dozen, once per phrase. Lookups then run on the CPU and
        only the rows travel to the GPU (identical values: a lookup is a copy). The table
        leaves the module tree, so moves and the swap arena never take it back to the GPU."""
        table = self.model.text_embedding
        del self.model.text_embedding
        object.__setattr__(self, "_host_text_embedding", table.to("cpu"))

    def text_embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Projected text-token embeddings: ids (..., T) -> (..., T, hidden)."""
        host = self.__dict__.get("_host_text_embedding")
        if host is None:
            return self.text_projection(self.model.text_embedding(ids))
        rows = host(ids.to("cpu"))
        return self.text_projection(rows.to(self.codec_head.weight.device))

    def codec_embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.codec_embedding(ids)

    def frame_embed(self, codes: torch.Tensor) -> torch.Tensor:
        """Sum of all 16 codebook embeddings of frames; codes (..., 16) -> (..., hidden)."""
        return self.codec_embed(codes[..., 0]) + self.code_predictor.embed_codes(codes[..., 1:])

    def forward_embeds(self, x: torch.Tensor, cache: KVCache, positions: torch.Tensor, span: int,
                       last: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Run `x` (1, T, hidden) at cache `positions`; returns (hidden (1,1,H), logits (1,V)) of
        the last row, or of row `last` (a (1,) device index: a prefill padded past its end)."""
        c = self.cfg
        rope, mask = step_inputs(self.model.rotary, positions, span, x.dtype, c.num_heads // c.num_kv_heads)
        h = run_layers(self.model.layers, self.model.norm, x, cache, positions, rope, mask)
        row = h[:, -1:] if last is None else h.index_select(1, last)
        return row, self.codec_head(row[:, 0])


class Qwen3TTSNet(nn.Module):
    """All weights of one checkpoint; the speaker encoder exists on Base models only."""

    def __init__(self, cfg: ModelConfig, speaker_encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.talker = Talker(cfg.talker)
        if speaker_encoder is not None:
            self.speaker_encoder = speaker_encoder
