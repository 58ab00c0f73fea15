"""Oracle: run the reference 12 Hz speech tokenizer on a checkpoint folder Sisyphus wrote.

Runs in the reference venv (transformers 4.57.3 + qwen-tts), never in Sisyphus's.
Usage: ref_codec.py SPEECH_TOKENIZER_DIR INPUTS.npz OUTPUTS.npz [DIR INPUTS OUTPUTS ...]
  (several checkpoints in one run save the reference's start-up time).
  INPUTS.npz holds `codes_<name>` int arrays [T, 16] to decode and `audio_<name>` float
  arrays to encode, with the sample rate in `sr_<name>`.
  OUTPUTS.npz gets `wav_<name>` for each decode and `codes_<name>` for each encode.
Prints one JSON line: a list with, per checkpoint, the reference loader's missing /
unexpected / mismatched keys and the model dtype.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

from qwen_tts import Qwen3TTSTokenizer
from qwen_tts.core import Qwen3TTSTokenizerV2Config, Qwen3TTSTokenizerV2Model


def load(folder: str) -> tuple[Qwen3TTSTokenizer, dict]:
    """The reference wrapper, built like its from_pretrained but keeping the loading info."""
    AutoConfig.register("qwen3_tts_tokenizer_12hz", Qwen3TTSTokenizerV2Config)
    AutoModel.register(Qwen3TTSTokenizerV2Config, Qwen3TTSTokenizerV2Model)
    model, info = AutoModel.from_pretrained(folder, output_loading_info=True)
    tok = Qwen3TTSTokenizer()
    tok.model = model.eval()
    tok.feature_extractor = AutoFeatureExtractor.from_pretrained(folder)
    tok.config = model.config
    tok.device = torch.device("cpu")
    return tok, {k: [str(x) for x in v] for k, v in info.items()}


def run(folder: str, inputs_path: str, outputs_path: str) -> dict:
    tok, info = load(folder)
    inputs = np.load(inputs_path)
    out: dict[str, np.ndarray] = {}
    for key in inputs.files:
        if key.startswith("codes_"):
            codes = torch.from_numpy(inputs[key].astype(np.int64))
            wavs, sr = tok.decode([{"audio_codes": codes}])
            assert sr == 24000
            out["wav_" + key[len("codes_"):]] = wavs[0].astype(np.float32)
        elif key.startswith("audio_"):
            name = key[len("audio_"):]
            enc = tok.encode(inputs[key].astype(np.float32), sr=int(inputs["sr_" + name]))
            out["codes_" + name] = enc.audio_codes[0].cpu().numpy().astype(np.int64)
    np.savez(outputs_path, **out)
    return {"loading_info": info, "dtype": str(tok.model.dtype)}


def main() -> None:
    args = sys.argv[1:]
    if not args or len(args) % 3:
        sys.exit("usage: ref_codec.py DIR INPUTS.npz OUTPUTS.npz [DIR INPUTS.npz OUTPUTS.npz ...]")
    torch.manual_seed(0)
    print(json.dumps([run(*args[i : i + 3]) for i in range(0, len(args), 3)]))


if __name__ == "__main__":
    main()
