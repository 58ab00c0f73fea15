"""Random-weight checkpoints in the official folder layout, for tests and benchmarks.

Real weights cannot be downloaded everywhere (CI, this project's machines), but the
official configs can: a random checkpoint with a real config costs the real compute, and
a shrunk one (fewer/narrower layers, same vocabularies and special-token ids) runs the
real code paths in milliseconds. The text tokenizer written here is a byte-level BPE with
exactly the official base-vocabulary size (151643), so every special token keeps its
official id, and with "assistant", "user" and "system" as single tokens, so the prompt's
fixed cut offsets hold.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch

from sisyphus.tts.qwen3.checkpoint import WEIGHTS, random_state_dict
from sisyphus.tts.qwen3.config import parse_model_config

BASE_VOCAB = 151643
WORDS = ("assistant", "user", "system", "Ġhello", "Ġworld", "Ġthe", "Ġis", "Ġtest", "Ġvoice", "ing")


def _byte_chars() -> list[str]:
    """GPT-2's byte -> printable unicode table (what byte-level BPE vocabularies are written in)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + n)
            n += 1
    return [chars[b] for b in range(256)]


def write_text_tokenizer(folder: Path, tokenizer_config: dict[str, Any]) -> None:
    """vocab.json + merges.txt + tokenizer_config.json (the official one, unchanged)."""
    vocab: dict[str, int] = {}
    for ch in _byte_chars():
        vocab.setdefault(ch, len(vocab))
    merges: list[str] = []
    for word in WORDS:
        for i in range(1, len(word)):
            left, right = word[:i], word[i]
            if left + right not in vocab:
                merges.append(f"{left} {right}")
                vocab[left + right] = len(vocab)
    filler = 0
    while len(vocab) < BASE_VOCAB:
        vocab[f"fill{filler}"] = len(vocab)
        filler += 1
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2), encoding="utf-8")


def shrink_config(raw: dict[str, Any], *, talker_layers: int = 2, hidden: int = 64, text_hidden: int = 32,
                  predictor_layers: int = 2, predictor_hidden: int | None = None, heads: int = 4, kv_heads: int = 2,
                  head_dim: int = 16) -> dict[str, Any]:
    """A small config with the official vocabularies, special-token ids and rope layout.

    mrope_section must still cover head_dim // 2 for the interleaved rope: scaled to fit.
    The predictor keeps the official width relation: narrower than the talker on 1.7B
    (so the projection between them exists), equal on 0.6B (no projection).
    """
    out = copy.deepcopy(raw)
    t = out["talker_config"]
    if predictor_hidden is None:
        same = t["hidden_size"] == t["code_predictor_config"]["hidden_size"]
        predictor_hidden = hidden if same else hidden // 2
    t.update(num_hidden_layers=talker_layers, hidden_size=hidden, intermediate_size=hidden * 2,
             text_hidden_size=text_hidden, num_attention_heads=heads, num_key_value_heads=kv_heads,
             head_dim=head_dim)
    half = head_dim // 2
    t["rope_scaling"] = dict(t["rope_scaling"], mrope_section=[half - 2 * (half // 3), half // 3, half // 3])
    p = t["code_predictor_config"]
    p.update(num_hidden_layers=predictor_layers, hidden_size=predictor_hidden,
             intermediate_size=predictor_hidden * 2, num_attention_heads=heads, num_key_value_heads=kv_heads,
             head_dim=head_dim, layer_types=["full_attention"] * predictor_layers)
    if "speaker_encoder_config" in out:
        out["speaker_encoder_config"] = dict(out["speaker_encoder_config"], enc_dim=hidden)
    return out


def write_checkpoint(folder: Path, config: dict[str, Any], generation_config: dict[str, Any],
                     tokenizer_config: dict[str, Any], *, seed: int = 0, dtype: torch.dtype = torch.float32,
                     extra_files: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write config files, the synthetic text tokenizer and random talker(+speaker) weights."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (folder / "generation_config.json").write_text(json.dumps(generation_config, indent=2), encoding="utf-8")
    for name, content in (extra_files or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps(content, indent=2), encoding="utf-8")
    write_text_tokenizer(folder, tokenizer_config)
    state = random_state_dict(parse_model_config(config), seed, dtype)
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / WEIGHTS), metadata={"format": "pt"})
    return folder


OFFICIAL = Path(__file__).resolve().parent / "official"
REPOS = {
    ("custom_voice", "1b7"): "Qwen3-TTS-12Hz-1.7B-CustomVoice",
    ("custom_voice", "0b6"): "Qwen3-TTS-12Hz-0.6B-CustomVoice",
    ("base", "1b7"): "Qwen3-TTS-12Hz-1.7B-Base",
    ("base", "0b6"): "Qwen3-TTS-12Hz-0.6B-Base",
}
CONFIG_FILES = ("config.json", "generation_config.json", "tokenizer_config.json", "preprocessor_config.json",
                "speech_tokenizer/config.json", "speech_tokenizer/configuration.json",
                "speech_tokenizer/preprocessor_config.json")


def official_files(kind: str, size: str) -> dict[str, dict[str, Any]]:
    """The official JSON files of one model. The 0.6B CustomVoice config is not vendored:
    it is derived from 0.6B-Base (same widths) plus the 1.7B CustomVoice speakers/languages."""
    if (kind, size) not in REPOS:
        raise ValueError(f"no official model {kind}/{size}; known: {sorted(REPOS)}")
    derived = (kind, size) == ("custom_voice", "0b6")
    src = OFFICIAL / REPOS[("base", "0b6") if derived else (kind, size)]
    files = {name: json.loads((src / name).read_text(encoding="utf-8")) for name in CONFIG_FILES}
    if derived:
        cv = json.loads((OFFICIAL / REPOS[("custom_voice", "1b7")] / "config.json").read_text(encoding="utf-8"))
        cfg = files["config.json"]
        cfg["tts_model_type"] = "custom_voice"
        cfg.pop("speaker_encoder_config", None)
        for key in ("spk_id", "spk_is_dialect", "codec_language_id"):
            cfg["talker_config"][key] = cv["talker_config"][key]
    return files


def write_random_model(folder: Path, kind: str, size: str, *, shrink: bool = True, seed: int = 0,
                       dtype: torch.dtype = torch.float32) -> Path:
    """A model folder (configs, text tokenizer, random talker weights) without the speech tokenizer."""
    return _write_talker(folder, kind, size, shrink_config if shrink else copy.deepcopy, seed, dtype)


def _write_talker(folder: Path, kind: str, size: str, make_config: Any, seed: int, dtype: torch.dtype) -> Path:
    """The official files of (kind, size) with `make_config` applied to config.json, random weights."""
    files = official_files(kind, size)
    extra = {name: content for name, content in files.items()
             if name not in ("config.json", "generation_config.json", "tokenizer_config.json")}
    return write_checkpoint(folder, make_config(files["config.json"]), files["generation_config.json"],
                            files["tokenizer_config.json"], seed=seed, dtype=dtype, extra_files=extra)


SCALES = ("tiny", "reduced", "full")
REDUCED_LAYERS = {"talker": 4, "predictor": 2}  # of 28 and 5 on 1.7B


def reduce_config(raw: dict[str, Any], *, talker_layers: int = REDUCED_LAYERS["talker"],
                  predictor_layers: int = REDUCED_LAYERS["predictor"]) -> dict[str, Any]:
    """The official config with fewer layers and every width unchanged.

    Per-layer cost, embeddings, heads and the codec stay real, so a CPU can run a benchmark
    whose per-layer figures mean something in a fraction of the full model's time.
    """
    out = copy.deepcopy(raw)
    t = out["talker_config"]
    t["num_hidden_layers"] = min(talker_layers, t["num_hidden_layers"])
    p = t["code_predictor_config"]
    p["num_hidden_layers"] = min(predictor_layers, p["num_hidden_layers"])
    if "layer_types" in p:
        p["layer_types"] = p["layer_types"][: p["num_hidden_layers"]]
    return out


def write_random_tts(folder: Path, kind: str, size: str = "1b7", scale: str = "full", *, seed: int = 0) -> Path:
    """A complete loadable model folder: configs, text tokenizer, talker and speech tokenizer.

    `scale` is "tiny" (shrunk widths, fp32, for tests), "reduced" (official widths, fewer
    layers) or "full" (the official config); the last two are written in bf16 as the
    official weights are, so their files have the real size.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    from sisyphus.tts.qwen3.codec import TINY_SHRINK, SpeechTokenizer

    folder = Path(folder)
    make_config = {"tiny": shrink_config, "reduced": reduce_config, "full": copy.deepcopy}[scale]
    _write_talker(folder, kind, size, make_config, seed, torch.float32 if scale == "tiny" else torch.bfloat16)
    codec_src = OFFICIAL / REPOS[("base", "1b7")] / "speech_tokenizer"  # the same codec for all four models
    codec = SpeechTokenizer.random(codec_src, seed=seed + 1, shrink=TINY_SHRINK if scale == "tiny" else None)
    codec.save_pretrained(folder / "speech_tokenizer")
    return folder
