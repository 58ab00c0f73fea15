"""The code predictor: fills residual codebooks 1..15 of one frame, one codebook per step.

Per frame it sees the talker's last hidden state and the embedding of codebook 0, then
feeds back each code it picks. Every frame starts from an empty cache at position 0, so
its cache is tiny (16 slots) and every step has fixed shapes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from sisyphus.tts.qwen3.config import PredictorConfig
from sisyphus.tts.qwen3.layers import DecoderLayer, KVCache, RMSNorm, Rotary, run_layers

# pick(logits (1, vocab), group) -> code tensor of shape (1,), group = 1..15
Picker = Callable[[torch.Tensor, int], torch.Tensor]


class PredictorModel(nn.Module):
    def __init__(self, cfg: PredictorConfig, talker_hidden: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DecoderLayer(cfg.hidden_size, cfg.intermediate_size, cfg.num_heads, cfg.num_kv_heads,
                         cfg.head_dim, cfg.rms_norm_eps)
            for _ in range(cfg.num_layers)
        )
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        # Embeddings of codebooks 1..15 live in the talker's width; the projection maps them.
        self.codec_embedding = nn.ModuleList(
            nn.Embedding(cfg.vocab_size, talker_hidden) for _ in range(cfg.num_code_groups - 1)
        )
        self.rotary = Rotary(cfg.head_dim, cfg.rope_theta)


class CodePredictor(nn.Module):
    def __init__(self, cfg: PredictorConfig, talker_hidden: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = PredictorModel(cfg, talker_hidden)
        self.lm_head = nn.ModuleList(
            nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False) for _ in range(cfg.num_code_groups - 1)
        )
        if cfg.hidden_size != talker_hidden:
            self.small_to_mtp_projection: nn.Module = nn.Linear(talker_hidden, cfg.hidden_size, bias=True)
        else:
            self.small_to_mtp_projection = nn.Identity()

    def new_cache(self) -> KVCache:
        p = next(self.parameters())
        c = self.cfg
        return KVCache(c.num_layers, c.num_kv_heads, c.num_code_groups, c.head_dim, p.dtype, p.device)

    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Sum of the embeddings of codebooks 1..15; codes: (..., 15) -> (..., talker_hidden)."""
        out = self.model.codec_embedding[0](codes[..., 0])
        for g in range(1, codes.shape[-1]):
            out = out + self.model.codec_embedding[g](codes[..., g])
        return out

    def predict(self, talker_hidden: torch.Tensor, code0_embed: torch.Tensor, pick: Picker,
                cache: KVCache, positions: torch.Tensor,
                record: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Pick codebooks 1..15 for one frame.

        talker_hidden, code0_embed: (1, 1, talker_hidden). `positions` is a preallocated
        arange(16) on the device. Returns (codes (15,), summed embedding (1, 1, talker_hidden)).
        `record`, when given, receives each group's raw logits (for parity tests).
        """
        groups = self.cfg.num_code_groups - 1
        span = self.cfg.num_code_groups
        x = self.small_to_mtp_projection(torch.cat((talker_hidden, code0_embed), dim=1))
        h = run_layers(self.model.layers, self.model.norm, self.model.rotary, x, cache,
                       positions[:2], span)[:, -1]
        codes = []
        total = torch.zeros_like(code0_embed)
        for g in range(groups):
            logits = self.lm_head[g](h)
            if record is not None:
                record.append(logits.detach().float().clone())
            code = pick(logits, g + 1)
            codes.append(code)
            emb = self.model.codec_embedding[g](code).view(1, 1, -1)
            total = total + emb
            if g + 1 < groups:
                x = self.small_to_mtp_projection(emb)
                h = run_layers(self.model.layers, self.model.norm, self.model.rotary, x, cache,
                               positions[g + 2 : g + 3], span)[:, -1]
        return torch.cat(codes), total
