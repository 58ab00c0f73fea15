"""The speech tokenizer's config.json, read into typed values the modules are built from.

The official `speech_tokenizer/config.json` nests an `encoder_config` (a Mimi encoder) and a
`decoder_config` (the 12 Hz vocoder). We keep the raw dict as well, so `save_pretrained`
writes back exactly what was read (plus any shrink overrides), in the official layout.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sisyphus.errors import ModelError

# Official file names of the speech_tokenizer/ folder.
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
_PREPROCESSOR = {
    "chunk_length_s": None,
    "feature_extractor_type": "EncodecFeatureExtractor",
    "feature_size": 1,
    "overlap": None,
    "padding_side": "right",
    "padding_value": 0.0,
    "return_attention_mask": True,
    "sampling_rate": 24000,
}
# The two small files of the folder, byte for byte as published.
EXTRA_FILES = {
    "configuration.json": json.dumps(
        {"framework": "pytorch", "task": "feature-extraction", "allow_remote": True}
    ),
    "preprocessor_config.json": json.dumps(_PREPROCESSOR, indent=2) + "\n",
}

# A tiny codec for tests and benchmarks: widths and depths shrunk, while codebook sizes,
# quantizer counts, sample rates and the 1920-sample frame stay official. The decoder's
# sliding window is small so that window logic shows within a few frames.
TINY_SHRINK: dict[str, dict[str, Any]] = {
    "encoder_config": {
        "hidden_size": 64, "num_filters": 4, "num_hidden_layers": 2, "num_attention_heads": 2,
        "num_key_value_heads": 2, "head_dim": 32, "intermediate_size": 128,
        "codebook_dim": 32, "vector_quantization_hidden_dimension": 32, "upsample_groups": 64,
    },
    "decoder_config": {
        "hidden_size": 64, "latent_dim": 64, "codebook_dim": 64, "decoder_dim": 64,
        "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2,
        "head_dim": 32, "intermediate_size": 128, "sliding_window": 8,
    },
}


@dataclass(frozen=True)
class EncoderConfig:
    """The Mimi encoder half: SEANet convs, a causal transformer, a 2x downsample, split RVQ."""

    sample_rate_hz: int
    audio_channels: int
    hidden_size: int
    num_filters: int
    num_residual_layers: int
    downsampling_ratios: tuple[int, ...]  # strides in the order the encoder applies them
    kernel_size: int
    last_kernel_size: int
    residual_kernel_size: int
    dilation_growth_rate: int
    compress: int
    pad_mode: str
    codebook_size: int
    codebook_dim: int
    num_quantizers: int
    num_semantic_quantizers: int
    vq_hidden_dim: int
    num_hidden_layers: int
    intermediate_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    norm_eps: float
    rope_theta: float
    frame_rate_hz: float

    @property
    def downsample_kernel(self) -> int:
        """Kernel of the conv that takes the SEANet rate (25 Hz) to the frame rate (12.5 Hz)."""
        hop = math.prod(self.downsampling_ratios)
        seanet_rate = math.ceil(self.sample_rate_hz / hop)
        return 2 * int(seanet_rate / self.frame_rate_hz)


@dataclass(frozen=True)
class DecoderConfig:
    """The 12 Hz vocoder: RVQ lookup, causal conv, sliding-window transformer, upsampling convs."""

    codebook_size: int
    codebook_dim: int
    num_quantizers: int
    latent_dim: int
    decoder_dim: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    sliding_window: int
    upsample_rates: tuple[int, ...]
    upsampling_ratios: tuple[int, ...]

    @property
    def samples_per_frame(self) -> int:
        return math.prod(self.upsample_rates) * math.prod(self.upsampling_ratios)


@dataclass(frozen=True)
class CodecConfig:
    raw: dict[str, Any]  # the config.json content, written back by save_pretrained
    encoder: EncoderConfig
    decoder: DecoderConfig
    num_codebooks: int  # encoder_valid_num_quantizers: codebooks the talker uses (16)
    sample_rate_hz: int
    samples_per_frame: int  # decode_upsample_rate: audio samples per decoded frame
    encode_hop: int  # encode_downsample_rate: audio samples per encoded frame

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CodecConfig:
        try:
            enc = _encoder_config(raw["encoder_config"])
            dec = _decoder_config(raw["decoder_config"])
            cfg = cls(
                raw=copy.deepcopy(raw),
                encoder=enc,
                decoder=dec,
                num_codebooks=int(raw.get("encoder_valid_num_quantizers", 16)),
                sample_rate_hz=int(raw.get("output_sample_rate", 24000)),
                samples_per_frame=int(raw.get("decode_upsample_rate", 1920)),
                encode_hop=int(raw.get("encode_downsample_rate", 1920)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(
                f"speech tokenizer config is malformed: {exc!r}",
                "use the speech_tokenizer/config.json of an official Qwen3-TTS 12Hz checkpoint",
            ) from exc
        cfg._check()
        return cfg

    @classmethod
    def from_folder(cls, folder: str | Path, shrink: dict[str, Any] | None = None) -> CodecConfig:
        path = Path(folder) / CONFIG_FILE
        if not path.is_file():
            raise ModelError(
                f"speech tokenizer config not found: {path}",
                "point at the checkpoint's speech_tokenizer/ folder (run `sisyphus models pull`)",
            )
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"cannot read {path}: {exc}", "re-download the model") from exc
        if raw.get("model_type") not in (None, "qwen3_tts_tokenizer_12hz"):
            raise ModelError(
                f"{path} is a {raw.get('model_type')!r} tokenizer, not qwen3_tts_tokenizer_12hz",
                "Sisyphus runs the 12 Hz Qwen3-TTS models only",
            )
        return cls.from_dict(merge_shrink(raw, shrink) if shrink else raw)

    def _check(self) -> None:
        dec, enc = self.decoder, self.encoder
        enc_hop = math.prod(enc.downsampling_ratios) * 2  # SEANet strides, then the 2x downsample
        problems = []
        if dec.samples_per_frame != self.samples_per_frame:
            problems.append(f"decoder upsamples {dec.samples_per_frame}x, config says {self.samples_per_frame}")
        if enc_hop != self.encode_hop:
            problems.append(f"encoder downsamples {enc_hop}x, config says {self.encode_hop}")
        if dec.num_quantizers != self.num_codebooks:
            problems.append(f"decoder has {dec.num_quantizers} quantizers, encoder keeps {self.num_codebooks}")
        if enc.num_quantizers < self.num_codebooks:
            problems.append(f"encoder has only {enc.num_quantizers} quantizers")
        if dec.decoder_dim % 2 ** len(dec.upsample_rates):
            problems.append("decoder_dim must halve once per upsample rate")
        if problems:
            raise ModelError(
                "speech tokenizer config is inconsistent: " + "; ".join(problems),
                "use the speech_tokenizer/config.json of an official Qwen3-TTS 12Hz checkpoint",
            )


def merge_shrink(raw: dict[str, Any], shrink: dict[str, Any]) -> dict[str, Any]:
    """Return `raw` with `shrink`'s values laid over it, one level into the sub-configs."""
    out = copy.deepcopy(raw)
    for key, value in shrink.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key].update(copy.deepcopy(value))
        else:
            out[key] = copy.deepcopy(value)
    return out


def _encoder_config(c: dict[str, Any]) -> EncoderConfig:
    hidden, heads = int(c.get("hidden_size", 512)), int(c.get("num_attention_heads", 8))
    ratios = c.get("upsampling_ratios") or [8, 6, 5, 4]
    return EncoderConfig(
        sample_rate_hz=int(c.get("sampling_rate", 24000)),
        audio_channels=int(c.get("audio_channels", 1)),
        hidden_size=hidden,
        num_filters=int(c.get("num_filters", 64)),
        num_residual_layers=int(c.get("num_residual_layers", 1)),
        downsampling_ratios=tuple(int(r) for r in reversed(ratios)),
        kernel_size=int(c.get("kernel_size", 7)),
        last_kernel_size=int(c.get("last_kernel_size", 3)),
        residual_kernel_size=int(c.get("residual_kernel_size", 3)),
        dilation_growth_rate=int(c.get("dilation_growth_rate", 2)),
        compress=int(c.get("compress", 2)),
        pad_mode=str(c.get("pad_mode", "constant")),
        codebook_size=int(c.get("codebook_size", 2048)),
        codebook_dim=int(c.get("codebook_dim") or hidden),
        num_quantizers=int(c.get("num_quantizers", 32)),
        num_semantic_quantizers=int(c.get("num_semantic_quantizers", 1)),
        vq_hidden_dim=int(c.get("vector_quantization_hidden_dimension", 256)),
        num_hidden_layers=int(c.get("num_hidden_layers", 8)),
        intermediate_size=int(c.get("intermediate_size", 2048)),
        num_attention_heads=heads,
        num_key_value_heads=int(c.get("num_key_value_heads", heads)),
        head_dim=int(c.get("head_dim") or hidden // heads),
        norm_eps=float(c.get("norm_eps", 1e-5)),
        rope_theta=float(c.get("rope_theta", 10000.0)),
        frame_rate_hz=float(c.get("_frame_rate", c.get("frame_rate", 12.5))),
    )


def _decoder_config(c: dict[str, Any]) -> DecoderConfig:
    hidden, heads = int(c.get("hidden_size", 1024)), int(c.get("num_attention_heads", 16))
    return DecoderConfig(
        codebook_size=int(c.get("codebook_size", 2048)),
        codebook_dim=int(c.get("codebook_dim", 512)),
        num_quantizers=int(c.get("num_quantizers", 16)),
        latent_dim=int(c.get("latent_dim", 1024)),
        decoder_dim=int(c.get("decoder_dim", 1536)),
        hidden_size=hidden,
        intermediate_size=int(c.get("intermediate_size", 3072)),
        num_hidden_layers=int(c.get("num_hidden_layers", 8)),
        num_attention_heads=heads,
        num_key_value_heads=int(c.get("num_key_value_heads", heads)),
        head_dim=int(c.get("head_dim") or hidden // heads),
        rms_norm_eps=float(c.get("rms_norm_eps", 1e-5)),
        rope_theta=float(c.get("rope_theta", 10000.0)),
        sliding_window=int(c.get("sliding_window", 72)),
        upsample_rates=tuple(int(r) for r in c.get("upsample_rates", (8, 5, 4, 3))),
        upsampling_ratios=tuple(int(r) for r in c.get("upsampling_ratios", (2, 2))),
    )
