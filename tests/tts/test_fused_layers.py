"""The fused decoder layer: the checkpoint's names and bytes, the reference's arithmetic.

q/k/v and gate/up are stored as one matrix each, so the official names must still load
and save, each weight must exist once (the weight arena repoints parameters), and every
fused piece (one-flip rope, grouped attention, rms_norm) must equal the plain formula in
float32. The last test counts the aten ops of one decode layer: that number is what the
fusions are for (a GPU's frame step is bound by kernel launches), so it must not creep back.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from sisyphus.tts.qwen3.checkpoint import build_net, random_state_dict
from sisyphus.tts.qwen3.config import parse_model_config
from sisyphus.tts.qwen3.layers import (
    DecoderLayer,
    KVCache,
    RMSNorm,
    Rotary,
    apply_rotary,
    causal_mask,
    grouped_attention,
    rotate,
    signed_sin,
    step_inputs,
)
from sisyphus.tts.qwen3.synthetic import official_files, shrink_config


@pytest.fixture(scope="module")
def cfg():
    return parse_model_config(shrink_config(official_files("custom_voice", "1b7")["config.json"]))


def test_state_dict_keeps_the_official_names_order_and_shapes(cfg):
    names = list(build_net(cfg, "meta").state_dict())
    attn = [n.rsplit(".", 2)[-2] for n in names if n.startswith("talker.model.layers.0.self_attn.")]
    mlp = [n.rsplit(".", 2)[-2] for n in names if n.startswith("talker.model.layers.0.mlp.")]
    assert attn == ["q_proj", "k_proj", "v_proj", "o_proj", "q_norm", "k_norm"]
    assert mlp == ["gate_proj", "up_proj", "down_proj"]
    assert not [n for n in names if "qkv_proj" in n or "gate_up_proj" in n]
    shapes = dict(build_net(cfg, "meta").state_dict().items())
    t = cfg.talker
    assert tuple(shapes["talker.model.layers.0.self_attn.k_proj.weight"].shape) == (
        t.num_kv_heads * t.head_dim, t.hidden_size)


def test_checkpoint_tensors_load_once_and_save_unchanged(cfg):
    state = {k[len("talker."):]: v for k, v in random_state_dict(cfg, 3).items() if k.startswith("talker.")}
    talker = build_net(cfg, "meta").talker
    talker.load_state_dict(state, strict=True, assign=True)
    saved = talker.state_dict()
    assert list(saved) == list(state)
    assert all(torch.equal(saved[k], v) for k, v in state.items())
    # Each weight exists once: the parameters hold exactly the checkpoint's numbers.
    assert sum(p.numel() for p in talker.parameters()) == sum(v.numel() for v in state.values())
    attn = talker.model.layers[1].self_attn
    assert torch.equal(attn.qkv_proj.weight, torch.cat([state[f"model.layers.1.self_attn.{p}_proj.weight"]
                                                        for p in "qkv"]))


def test_a_checkpoint_missing_one_part_is_refused_by_its_name(cfg):
    state = {k[len("talker."):]: v for k, v in random_state_dict(cfg, 3).items() if k.startswith("talker.")}
    del state["model.layers.0.mlp.up_proj.weight"]
    with pytest.raises(RuntimeError, match="gate_proj"):  # the part left over is named unexpected
        build_net(cfg, "meta").talker.load_state_dict(state, strict=True, assign=True)


def test_rms_norm_equals_the_float32_formula_exactly():
    norm = RMSNorm(64, 1e-6)
    norm.weight.data = torch.randn(64, generator=torch.Generator().manual_seed(1))
    x = torch.randn(2, 3, 64, generator=torch.Generator().manual_seed(2)) * 5
    plain = norm.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))
    assert torch.equal(norm(x), plain)


def test_one_flip_rope_equals_rotate_half():
    gen = torch.Generator().manual_seed(4)
    rotary = Rotary(16, 10000.0, (4, 2, 2), interleaved=True)
    positions = torch.tensor([3, 7, 20])
    cos, sin = rotary(positions, torch.float32)
    x = torch.randn(1, 3, 6, 16, generator=gen)  # (batch, T, heads, head_dim)
    plain = apply_rotary(x.transpose(1, 2), cos[None, None], sin[None, None]).transpose(1, 2)
    fused = rotate(x, cos[None, :, None], signed_sin(sin)[None, :, None])
    assert float((fused - plain).abs().max()) < 1e-6


@pytest.mark.parametrize("t", [1, 3])
def test_grouped_attention_equals_sdpa_with_gqa(t):
    gen = torch.Generator().manual_seed(5)
    heads, kv, d, span = 8, 2, 16, 12
    q = torch.randn(t, heads, d, generator=gen)
    keys, values = torch.randn(kv, span, d, generator=gen), torch.randn(kv, span, d, generator=gen)
    positions = torch.arange(5, 5 + t)
    mask = causal_mask(positions, span, torch.float32)
    plain = F.scaled_dot_product_attention(q.transpose(0, 1)[None], keys[None], values[None],
                                           attn_mask=mask[None, None], enable_gqa=True)
    plain = plain[0].transpose(0, 1).reshape(t, heads * d)
    fused = grouped_attention(q, keys, values, mask.repeat(heads // kv, 1)[None], d**-0.5)
    assert float((fused - plain).abs().max()) < 1e-6


class _Count(TorchDispatchMode):
    """Kernel-launching aten ops (composites such as linear counted as what they run)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        if str(func) != "aten.rms_norm.default":
            with self:
                out = func.decompose(*args, **(kwargs or {}))
            if out is not NotImplemented:
                return out
        if not func.is_view and str(func) not in ("aten._unsafe_view.default", "aten.empty.memory_format"):
            self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def test_a_decode_layer_runs_at_most_nineteen_kernels():
    """Was 55 (about 60 on CUDA, where grouped attention with a mask took SDPA's math path)."""
    heads, kv, d, hidden = 4, 2, 16, 64
    layer = DecoderLayer(hidden, 128, heads, kv, d, 1e-6).eval()
    rotary = Rotary(d, 10000.0)
    cache = KVCache(1, kv, 32, d, torch.float32, "cpu")
    positions = torch.tensor([9])
    rope, mask = step_inputs(rotary, positions, 16, torch.float32, heads // kv)
    x = torch.randn(1, 1, hidden)
    with torch.inference_mode(), _Count() as count:
        layer(x, rope, cache, 0, positions, mask)
    assert len(count.ops) <= 19, count.ops
