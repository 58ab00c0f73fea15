"""Oracle: the reference speaker encoder (and its mel) on weights Sisyphus wrote.

Runs in the reference venv (transformers 4.57.3 + qwen-tts), never in Sisyphus's.
Usage: ref_speaker.py CONFIG.json WEIGHTS.safetensors INPUTS.npz OUTPUTS.npz [CONFIG ...]
  (several encoders in one run save the reference's start-up time).
  CONFIG.json: a speaker_encoder_config dict; WEIGHTS: its tensors without the
  `speaker_encoder.` prefix; INPUTS.npz: `audio_<name>` float arrays at 24 kHz.
  OUTPUTS.npz gets `emb_<name>` from the reference's own extract_speaker_embedding.
Prints one JSON line: per encoder the missing / unexpected keys when loading WEIGHTS, and
the tensor names and shapes of a reference speaker encoder built from the official
1.7B-Base config.
"""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import numpy as np
import torch
from safetensors.torch import load_file

from qwen_tts.core.models.configuration_qwen3_tts import Qwen3TTSSpeakerEncoderConfig
from qwen_tts.core.models.modeling_qwen3_tts import (
    Qwen3TTSForConditionalGeneration,
    Qwen3TTSSpeakerEncoder,
)


def run(config_path: str, weights_path: str, inputs_path: str, outputs_path: str) -> dict:
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    encoder = Qwen3TTSSpeakerEncoder(Qwen3TTSSpeakerEncoderConfig(**config)).eval()
    result = encoder.load_state_dict(load_file(weights_path), strict=False)
    # The reference's own method, with a stand-in for the full model it is bound to.
    owner = SimpleNamespace(speaker_encoder=encoder, device=torch.device("cpu"), dtype=torch.float32)
    inputs = np.load(inputs_path)
    out = {}
    for key in inputs.files:
        if key.startswith("audio_"):
            emb = Qwen3TTSForConditionalGeneration.extract_speaker_embedding(
                owner, audio=inputs[key].astype(np.float32), sr=24000
            )
            out["emb_" + key[len("audio_"):]] = emb.float().numpy()
    np.savez(outputs_path, **out)
    return {"missing_keys": list(result.missing_keys), "unexpected_keys": list(result.unexpected_keys)}


def main() -> None:
    args = sys.argv[1:]
    if not args or len(args) % 4:
        sys.exit("usage: ref_speaker.py CONFIG.json WEIGHTS.safetensors INPUTS.npz OUTPUTS.npz [...]")
    runs = [run(*args[i : i + 4]) for i in range(0, len(args), 4)]
    official = Qwen3TTSSpeakerEncoder(Qwen3TTSSpeakerEncoderConfig(enc_dim=2048, sample_rate=24000))
    shapes = {k: list(v.shape) for k, v in official.state_dict().items()}
    print(json.dumps({"runs": runs, "official_shapes": shapes}))


if __name__ == "__main__":
    main()
