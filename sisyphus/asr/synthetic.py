"""Randomly initialised GLM-ASR checkpoints in the official layout, for tests and benchmarks.

The real GLM-ASR-Nano-2512 cannot be downloaded everywhere, so tests and `sisyphus bench
--random-weights` write one: the same files (config.json, model.safetensors in bf16,
generation_config.json, tokenizer.json + tokenizer_config.json + chat_template.jinja,
processor_config.json with the nested WhisperFeatureExtractor settings) produced by
transformers' own `save_pretrained`, so Sisyphus's loading and generate code runs
unchanged on it. Sizes:

- "tiny": 2 layers of width 64 (tests; generate runs in milliseconds);
- "full": the official config (same compute and memory as the real model);
- "reduced": the official widths with fewer layers (benchmarks on a small CPU).

The tokenizer is 256 byte tokens plus GLM's special tokens; the model keeps its own
vocabulary size, and the config's special-token ids point at the tokenizer's. Weights
come from a fixed seed, so the same folder is written every time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    GlmAsrConfig,
    GlmAsrForConditionalGeneration,
    GlmAsrProcessor,
    PreTrainedTokenizerFast,
    WhisperFeatureExtractor,
)

# GLM's special tokens as the official tokenizer names them; <|pad|> stands for audio.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "[gMASK]",
    "<sop>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
    "<|begin_of_audio|>",
    "<|end_of_audio|>",
    "<|pad|>",
)
AUDIO_TOKEN = "<|pad|>"
# Tokens that end a reply (the official config lists endoftext, user and observation).
EOS_TOKENS = ("<|endoftext|>", "<|user|>", "<|observation|>")

# The prompt GLM-ASR was trained on: audio in a user turn, then the instruction in a
# second user turn, then the assistant header (see zai-org/GLM-ASR inference.py).
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- set header = '<|' + message['role'] + '|>\\n' -%}"
    "{%- if message['content'] is string -%}"
    "{{- header + message['content'] -}}"
    "{%- else -%}"
    "{%- set ns = namespace(opened=false) -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'audio' -%}"
    "{%- if not ns.opened -%}{{- header -}}{%- set ns.opened = true -%}{%- endif -%}"
    "{{- '<|begin_of_audio|><|pad|><|end_of_audio|>' -}}"
    "{%- elif item['type'] == 'text' -%}"
    "{{- header + item['text'] -}}{%- set ns.opened = true -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}"
)

OFFICIAL_CONFIG = Path(__file__).parent / "official" / "config.json"
SIZES = ("tiny", "reduced", "full")
REDUCED_LAYERS = {"audio": 4, "text": 4}  # of 32 and 28

SEED = 1234
# Wider than the official 0.02 init: with tiny widths, 0.02 leaves the residual stream so
# dominated by the last input embedding that greedy decoding just echoes the prompt's "\n";
# at 0.3 the output varies with the audio.
INIT_STD = 0.3


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE with no merges: every byte is a token, so any text round-trips."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: index for index, symbol in enumerate(alphabet)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t != "<|endoftext|>"],
        padding_side="left",
    )
    tokenizer.add_special_tokens({"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def official_config(tokenizer: PreTrainedTokenizerFast, size: str) -> GlmAsrConfig:
    """The official architecture ("full") or its widths with fewer layers ("reduced")."""
    raw: dict[str, Any] = json.loads(OFFICIAL_CONFIG.read_text(encoding="utf-8"))
    text, audio = dict(raw["text_config"]), dict(raw["audio_config"])
    if size == "reduced":
        audio["num_hidden_layers"] = REDUCED_LAYERS["audio"]
        text["num_hidden_layers"] = REDUCED_LAYERS["text"]
    text["eos_token_id"] = [tokenizer.convert_tokens_to_ids(t) for t in EOS_TOKENS]
    return GlmAsrConfig(
        text_config=text,
        audio_config=audio,
        audio_token_id=tokenizer.convert_tokens_to_ids(AUDIO_TOKEN),
        projector_hidden_act=raw["projector_hidden_act"],
        dtype="bfloat16",
    )


def tiny_config(tokenizer: PreTrainedTokenizerFast) -> GlmAsrConfig:
    """The official architecture with small widths; the projector merges 4 encoder frames."""
    audio_hidden = 32
    eos_ids = [tokenizer.convert_tokens_to_ids(t) for t in EOS_TOKENS]
    vocab_size = 64 * ((len(tokenizer) + 63) // 64)
    text_config = {
        "vocab_size": vocab_size,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "max_position_embeddings": 8192,
        "eos_token_id": eos_ids,
        "initializer_range": INIT_STD,
    }
    audio_config = {
        "model_type": "glmasr_encoder",
        "hidden_size": audio_hidden,
        "intermediate_size": 4 * audio_hidden,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "num_mel_bins": 128,
        "max_position_embeddings": 1500,
        "initializer_range": INIT_STD,
    }
    return GlmAsrConfig(
        text_config=text_config,
        audio_config=audio_config,
        audio_token_id=tokenizer.convert_tokens_to_ids(AUDIO_TOKEN),
        initializer_range=INIT_STD,
        dtype="bfloat16",
    )


def tiny_processor(tokenizer: PreTrainedTokenizerFast) -> GlmAsrProcessor:
    features = WhisperFeatureExtractor(
        feature_size=128,
        sampling_rate=16_000,
        hop_length=160,
        n_fft=400,
        chunk_length=30,
        padding_value=0.0,
        return_attention_mask=False,
    )
    return GlmAsrProcessor(
        feature_extractor=features, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE, audio_token=AUDIO_TOKEN
    )


def write_tiny_glmasr(folder: Path) -> Path:
    """Write the tiny checkpoint into `folder` (created if needed) and return it."""
    return write_random_glmasr(folder, "tiny")


def write_random_glmasr(folder: Path, size: str = "tiny") -> Path:
    """Write a random checkpoint of `size` ("tiny", "reduced" or "full") into `folder`.

    "full" allocates the whole model in float32 on the CPU first (about 9 GB) and writes
    about 4.5 GB of bf16 weights.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer()
    config = tiny_config(tokenizer) if size == "tiny" else official_config(tokenizer, size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = GlmAsrForConditionalGeneration(config)
    if size == "tiny":
        _quiet_special_tokens(model, tokenizer)
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.to(torch.bfloat16).save_pretrained(folder)
    tiny_processor(tokenizer).save_pretrained(folder)
    return folder


def _quiet_special_tokens(model: GlmAsrForConditionalGeneration, tokenizer: PreTrainedTokenizerFast) -> None:
    """Shrink the special tokens' (tied) embedding rows.

    Random weights otherwise tend to pick a special token at the first step, which decodes
    to an empty transcript; with these rows small, greedy decoding emits byte tokens, so
    tests see real text come out of generate (it then runs to max_new_tokens).
    """
    special_ids = [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS]
    embeddings = model.get_input_embeddings().weight
    with torch.no_grad():
        embeddings[special_ids] *= 0.01
