"""Typed view of a Qwen3-TTS checkpoint's config.json and generation_config.json.

Only the fields the runtime uses are read (the official files carry many transformers
defaults that mean nothing here). A missing field is a `ModelError` that names the file
and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sisyphus.errors import ModelError

KINDS = ("custom_voice", "base")
SIZES = ("1b7", "0b6")


@dataclass(frozen=True)
class PredictorConfig:
    """The code predictor: a small decoder that fills codebooks 1..15 of each frame."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    vocab_size: int  # entries per residual codebook (2048)
    num_code_groups: int  # 16: codebook 0 from the talker + 15 predicted here


@dataclass(frozen=True)
class TalkerConfig:
    """The talker: the decoder that emits codebook 0 of each 12.5 Hz frame."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    mrope_section: tuple[int, ...]
    mrope_interleaved: bool
    vocab_size: int  # codec vocabulary incl. control ids (3072)
    text_vocab_size: int
    text_hidden_size: int
    num_code_groups: int
    codec_eos_id: int
    codec_think_id: int
    codec_nothink_id: int
    codec_think_bos_id: int
    codec_think_eos_id: int
    codec_pad_id: int
    codec_bos_id: int
    language_ids: dict[str, int]
    speaker_ids: dict[str, int]
    speaker_dialect: dict[str, str | None]  # preset speaker -> dialect language or None
    predictor: PredictorConfig


@dataclass(frozen=True)
class ModelConfig:
    kind: str  # "custom_voice" | "base"
    size: str  # "1b7" | "0b6"
    im_start_id: int
    im_end_id: int
    assistant_id: int
    tts_bos_id: int
    tts_eos_id: int
    tts_pad_id: int
    talker: TalkerConfig
    speaker_encoder: dict[str, Any] | None  # raw speaker_encoder_config (Base models)

    @property
    def supports_instruct(self) -> bool:
        """The 0.6B CustomVoice model was not trained with instructions; the reference drops them."""
        return self.kind == "custom_voice" and self.size == "1b7"

    @property
    def languages(self) -> list[str]:
        """Selectable languages: "auto" plus every non-dialect language of the checkpoint."""
        return ["auto"] + [name for name in self.talker.language_ids if "dialect" not in name]

    @property
    def speakers(self) -> list[str]:
        return list(self.talker.speaker_ids)


@dataclass(frozen=True)
class SamplingConfig:
    """generation_config.json: how the talker (codebook 0) and predictor (1..15) sample."""

    do_sample: bool = True
    temperature: float = 0.9
    top_k: int = 50
    top_p: float = 1.0
    repetition_penalty: float = 1.05
    sub_do_sample: bool = True
    sub_temperature: float = 0.9
    sub_top_k: int = 50
    sub_top_p: float = 1.0
    max_new_tokens: int = 8192


def _get(d: dict[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise ModelError(
            f"{where} has no field {key!r}",
            "the checkpoint is not a Qwen3-TTS 12 Hz model or is incomplete; re-run `sisyphus models pull`",
        )
    return d[key]


def _decoder_fields(d: dict[str, Any], w: str) -> dict[str, Any]:
    """The decoder-stack sizes the talker and the code predictor both read."""
    return dict(
        hidden_size=int(_get(d, "hidden_size", w)),
        intermediate_size=int(_get(d, "intermediate_size", w)),
        num_layers=int(_get(d, "num_hidden_layers", w)),
        num_heads=int(_get(d, "num_attention_heads", w)),
        num_kv_heads=int(_get(d, "num_key_value_heads", w)),
        head_dim=int(d.get("head_dim") or d["hidden_size"] // d["num_attention_heads"]),
        rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)),
        rope_theta=float(d.get("rope_theta", 10000.0)),
    )


def _predictor(d: dict[str, Any]) -> PredictorConfig:
    w = "config.json talker_config.code_predictor_config"
    return PredictorConfig(
        **_decoder_fields(d, w),
        vocab_size=int(_get(d, "vocab_size", w)),
        num_code_groups=int(_get(d, "num_code_groups", w)),
    )


def _talker(d: dict[str, Any]) -> TalkerConfig:
    w = "config.json talker_config"
    rope = d.get("rope_scaling") or {}
    dialect = {k: (v if isinstance(v, str) else None) for k, v in d.get("spk_is_dialect", {}).items()}
    return TalkerConfig(
        **_decoder_fields(d, w),
        mrope_section=tuple(int(x) for x in rope.get("mrope_section", ())),
        mrope_interleaved=bool(rope.get("interleaved", False)),
        vocab_size=int(_get(d, "vocab_size", w)),
        text_vocab_size=int(_get(d, "text_vocab_size", w)),
        text_hidden_size=int(_get(d, "text_hidden_size", w)),
        num_code_groups=int(_get(d, "num_code_groups", w)),
        codec_eos_id=int(_get(d, "codec_eos_token_id", w)),
        codec_think_id=int(_get(d, "codec_think_id", w)),
        codec_nothink_id=int(_get(d, "codec_nothink_id", w)),
        codec_think_bos_id=int(_get(d, "codec_think_bos_id", w)),
        codec_think_eos_id=int(_get(d, "codec_think_eos_id", w)),
        codec_pad_id=int(_get(d, "codec_pad_id", w)),
        codec_bos_id=int(_get(d, "codec_bos_id", w)),
        language_ids={k.lower(): int(v) for k, v in _get(d, "codec_language_id", w).items()},
        speaker_ids={k.lower(): int(v) for k, v in (d.get("spk_id") or {}).items()},
        speaker_dialect=dialect,
        predictor=_predictor(_get(d, "code_predictor_config", w)),
    )


def parse_model_config(raw: dict[str, Any]) -> ModelConfig:
    """Build the typed view; refuses model kinds this runtime does not serve."""
    w = "config.json"
    kind = _get(raw, "tts_model_type", w)
    size = _get(raw, "tts_model_size", w)
    tok = raw.get("tokenizer_type", "qwen3_tts_tokenizer_12hz")
    if kind not in KINDS:
        raise ModelError(
            f"unsupported Qwen3-TTS model type {kind!r}; supported: {', '.join(KINDS)}",
            "use a CustomVoice or Base checkpoint",
        )
    if tok != "qwen3_tts_tokenizer_12hz":
        raise ModelError(f"unsupported speech tokenizer {tok!r}", "use a Qwen3-TTS-12Hz checkpoint")
    return ModelConfig(
        kind=kind,
        size=size,
        im_start_id=int(_get(raw, "im_start_token_id", w)),
        im_end_id=int(_get(raw, "im_end_token_id", w)),
        assistant_id=int(_get(raw, "assistant_token_id", w)),
        tts_bos_id=int(_get(raw, "tts_bos_token_id", w)),
        tts_eos_id=int(_get(raw, "tts_eos_token_id", w)),
        tts_pad_id=int(_get(raw, "tts_pad_token_id", w)),
        talker=_talker(_get(raw, "talker_config", w)),
        speaker_encoder=raw.get("speaker_encoder_config") if kind == "base" else None,
    )


def parse_sampling_config(raw: dict[str, Any]) -> SamplingConfig:
    d = SamplingConfig()
    return SamplingConfig(
        do_sample=bool(raw.get("do_sample", d.do_sample)),
        temperature=float(raw.get("temperature", d.temperature)),
        top_k=int(raw.get("top_k", d.top_k)),
        top_p=float(raw.get("top_p", d.top_p)),
        repetition_penalty=float(raw.get("repetition_penalty", d.repetition_penalty)),
        sub_do_sample=bool(raw.get("subtalker_dosample", d.sub_do_sample)),
        sub_temperature=float(raw.get("subtalker_temperature", d.sub_temperature)),
        sub_top_k=int(raw.get("subtalker_top_k", d.sub_top_k)),
        sub_top_p=float(raw.get("subtalker_top_p", d.sub_top_p)),
        max_new_tokens=int(raw.get("max_new_tokens", d.max_new_tokens)),
    )


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path} is missing", "re-run `sisyphus models pull` for this model") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} cannot be read: {exc}", "re-run `sisyphus models pull`") from None


def load_configs(folder: Path) -> tuple[ModelConfig, SamplingConfig]:
    model = parse_model_config(read_json(folder / "config.json"))
    gen_path = folder / "generation_config.json"
    sampling = parse_sampling_config(read_json(gen_path)) if gen_path.exists() else SamplingConfig()
    return model, sampling
