"""Benchmark worker: the reference qwen-tts package, one-shot CustomVoice generation.

Runs inside the reference virtual environment (transformers 4.57.3), never in Sisyphus's:
it imports nothing from Sisyphus. `benchmarks/tts_stream.py` starts it, writes one command
per line on stdin ("run" or "quit") and reads the lines it prints that start with `@@bench `
(JSON). Everything else the package prints is ignored by the driver.

The model is loaded and warmed up once before "ready"; each "run" times only the
`generate_custom_voice` call (talker + code predictor + one-shot codec decode). The talker
is forced to exactly K frames (min_new_tokens = max_new_tokens = K + 1: random weights
never decide to stop by themselves) and decodes greedily, as Sisyphus does on its side.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import sys
import time

import numpy as np
import torch

PREFIX = "@@bench "
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def emit(payload: dict) -> None:
    sys.stdout.write(PREFIX + json.dumps(payload) + "\n")
    sys.stdout.flush()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class Reference:
    """The reference model plus two timers: talker generation and codec decode."""

    def __init__(self, folder: str, device: str, dtype: torch.dtype) -> None:
        from qwen_tts import Qwen3TTSModel

        kwargs: dict = {"dtype": dtype}
        if device != "cpu":
            kwargs["device_map"] = device
        self.device = device
        self.tts = Qwen3TTSModel.from_pretrained(folder, **kwargs)
        self.generate_s = 0.0
        self.decode_s = 0.0
        self.codes: torch.Tensor | None = None
        self._wrap()

    def _wrap(self) -> None:
        model = self.tts.model
        original_generate, original_talker = model.generate, model.talker.generate
        original_decode = model.speech_tokenizer.decode

        def generate(*args, **kwargs):
            sync(self.device)
            start = time.perf_counter()
            out = original_generate(*args, **kwargs)
            sync(self.device)
            self.generate_s = time.perf_counter() - start
            self.codes = out[0][0]
            return out

        def talker_generate(*args, **kwargs):
            kwargs["min_new_tokens"] = kwargs["max_new_tokens"]  # exactly K frames
            return original_talker(*args, **kwargs)

        def decode(*args, **kwargs):
            start = time.perf_counter()
            out = original_decode(*args, **kwargs)
            self.decode_s = time.perf_counter() - start
            return out

        model.generate = generate
        model.talker.generate = talker_generate
        model.speech_tokenizer.decode = decode

    def speak(self, text: str, speaker: str, language: str, frames: int) -> dict:
        sync(self.device)
        start = time.perf_counter()
        wavs, rate = self.tts.generate_custom_voice(text, speaker, language=language, do_sample=False,
                                                    subtalker_dosample=False, max_new_tokens=frames + 1)
        sync(self.device)
        total_s = time.perf_counter() - start
        codes = self.codes.detach().to("cpu", torch.long).contiguous()
        return {"total_s": total_s, "generate_s": self.generate_s, "decode_s": self.decode_s,
                "frames": int(codes.shape[0]), "audio_s": len(wavs[0]) / rate,
                "codes_sha1": hashlib.sha1(codes.numpy().astype(np.int64).tobytes()).hexdigest(),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--text", required=True)
    parser.add_argument("--speaker", required=True)
    parser.add_argument("--language", required=True)
    parser.add_argument("--frames", type=int, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import transformers

    with torch.inference_mode():
        start = time.perf_counter()
        ref = Reference(args.folder, args.device, DTYPES[args.dtype])
        load_s = time.perf_counter() - start
        warm = ref.speak(args.text, args.speaker, args.language, args.frames)
        emit({"event": "ready", "load_s": load_s, "warmup_s": warm["total_s"], "torch": torch.__version__,
              "transformers": transformers.__version__, "threads": torch.get_num_threads()})
        for line in sys.stdin:
            if line.strip() != "run":
                break
            emit({"event": "result", **ref.speak(args.text, args.speaker, args.language, args.frames)})


if __name__ == "__main__":
    main()
