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
from sisyphus.tts.qwen3.layers import KVCache, RMSNorm, Rotary, decoder_layers, run_layers, step_inputs

# pick(logits (1, vocab), group) -> code tensor of shape (1,), group = 1..15
Picker = Callable[[torch.Tensor, int], torch.Tensor]


class PredictorModel(nn.Module):
    def __init__(self, cfg: PredictorConfig, talker_hidden: int) -> None:
        super().__init__()
        self.layers = decoder_layers(cfg)
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
        """The cache, plus the rope tables and masks of the 15 steps: every frame uses the
        same positions (prefill at 0-1, then one step each at 2..15), so they are built once."""
        p = next(self.parameters())
        c = self.cfg
        cache = KVCache(c.num_layers, c.num_kv_heads, c.num_code_groups, c.head_dim, p.dtype, p.device)
        pos = torch.arange(c.num_code_groups, device=p.device)
        groups = c.num_heads // c.num_kv_heads
        cache.steps = [step_inputs(self.model.rotary, pos[:2], c.num_code_groups, p.dtype, groups)]
        cache.steps += [step_inputs(self.model.rotary, pos[g : g + 1], c.num_code_groups, p.dtype, groups)
                        for g in range(2, c.num_code_groups)]
        cache.positions = [pos[:2]] + [pos[g : g + 1] for g in range(2, c.num_code_groups)]
        return cache

    def _run(self, x: torch.Tensor, cache: KVCache, step: int) -> torch.Tensor:
        rope, mask = cache.steps[step]
        m = self.model
        return run_layers(m.layers, m.norm, x, cache, cache.positions[step], rope, mask)[:, -1]

    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Sum of the embeddings of codebooks 1..15; codes: (..., 15) -> (..., talker_hidden)."""
        out = self.model.codec_embedding[0](codes[..., 0])
        for g in range(1, codes.shape[-1]):
            out = out + self.model.codec_embedding[g](codes[..., g])
        return out

    def predict(self, talker_hidden: torch.Tensor, code0_embed: torch.Tensor, pick: Picker,
                cache: KVCache, record: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Pick codebooks 1..15 for one frame.

        talker_hidden, code0_embed: (1, 1, talker_hidden); `cache` comes from `new_cache()`.
        Returns (codes (15,), summed embedding (1, 1, talker_hidden)). `record`, when given,
        receives each group's raw logits (for parity tests).
        """
        groups = self.cfg.num_code_groups - 1
        x = self.small_to_mtp_projection(torch.cat((talker_hidden, code0_embed), dim=1))
        h = self._run(x, cache, 0)
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
                h = self._run(self.small_to_mtp_projection(emb), cache, g + 1)
        return torch.cat(codes), total
