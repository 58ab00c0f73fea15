"""Clone prompts: what a Base model needs to speak in a reference voice, computed once.

A prompt holds the reference speaker embedding and, in ICL mode, the reference audio's
codec frames and its transcript's token ids. Without a transcript it is x-vector-only
(the embedding alone). Prompts are saved as one safetensors file whose header carries the
JSON metadata, written atomically (temp file + rename).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sisyphus.errors import TTSError, VoiceError

FORMAT_VERSION = 1
MIN_REF_SECONDS = 1.0
MAX_REF_SECONDS = 60.0
SILENCE_RMS = 1e-3  # about -60 dBFS
CLIP_LEVEL = 0.999
MAX_CLIPPED_FRACTION = 0.01


@dataclass
class ClonePrompt:
    speaker_embedding: torch.Tensor  # (enc_dim,) float32
    ref_codes: torch.Tensor | None  # (frames, 16) long; None when x-vector-only
    ref_text_ids: list[int] | None  # ids of the reference template; None when x-vector-only
    x_vector_only: bool
    model_name: str
    ref_text: str | None = None
    language: str | None = None

    def save(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        path = Path(path)
        tensors = {"speaker_embedding": self.speaker_embedding.detach().float().cpu().contiguous()}
        if self.ref_codes is not None:
            tensors["ref_codes"] = self.ref_codes.detach().long().cpu().contiguous()
        meta = {"format": "pt", "sisyphus_clone_prompt": json.dumps({
            "version": FORMAT_VERSION, "x_vector_only": self.x_vector_only, "model_name": self.model_name,
            "ref_text": self.ref_text, "ref_text_ids": self.ref_text_ids, "language": self.language,
        })}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata=meta)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: str | Path) -> ClonePrompt:
        from safetensors import safe_open

        path = Path(path)
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                meta = json.loads((f.metadata() or {})["sisyphus_clone_prompt"])
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except FileNotFoundError:
            raise VoiceError(f"clone prompt {path} does not exist", "create it with `sisyphus voices clone`") from None
        except Exception as exc:  # corrupt header, missing metadata, wrong file type
            raise VoiceError(f"clone prompt {path} cannot be read: {exc}", "re-create the voice") from None
        if meta.get("version") != FORMAT_VERSION or "speaker_embedding" not in tensors:
            raise VoiceError(f"clone prompt {path} has an unknown format", "re-create the voice")
        codes = tensors.get("ref_codes")
        if not torch.isfinite(tensors["speaker_embedding"]).all() or (
            codes is not None and (codes.ndim != 2 or codes.numel() == 0 or int(codes.min()) < 0)
        ):
            raise VoiceError(f"clone prompt {path} holds damaged values", "re-create the voice")
        return cls(
            speaker_embedding=tensors["speaker_embedding"], ref_codes=tensors.get("ref_codes"),
            ref_text_ids=meta.get("ref_text_ids"), x_vector_only=bool(meta["x_vector_only"]),
            model_name=str(meta["model_name"]), ref_text=meta.get("ref_text"), language=meta.get("language"),
        )


def check_reference_audio(audio: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """Mono float32 reference audio, or a TTSError saying why it cannot be cloned from."""
    audio = np.asarray(audio)
    if audio.ndim == 2:
        audio = audio.mean(axis=-1 if audio.shape[-1] <= 8 else 0)
    if audio.ndim != 1 or not np.issubdtype(audio.dtype, np.floating):
        raise TTSError(f"reference audio must be mono float samples, got {audio.dtype} {list(audio.shape)}",
                       "load the file with soundfile/librosa as float32")
    if not isinstance(sample_rate_hz, (int, np.integer)) or sample_rate_hz < 8000:
        raise TTSError(f"reference sample rate must be an integer >= 8000 Hz, got {sample_rate_hz!r}",
                       "pass the file's real sample rate")
    seconds = audio.shape[0] / sample_rate_hz
    if seconds < MIN_REF_SECONDS:
        raise TTSError(f"reference audio is too short ({seconds:.2f} s, need at least {MIN_REF_SECONDS:.0f} s)",
                       "record 3-10 seconds of clear speech")
    if seconds > MAX_REF_SECONDS:
        raise TTSError(f"reference audio is too long ({seconds:.0f} s, at most {MAX_REF_SECONDS:.0f} s)",
                       "trim it to 3-10 seconds of clear speech")
    if not np.all(np.isfinite(audio)):
        raise TTSError("reference audio contains NaN or infinite samples", "check the file")
    audio = audio.astype(np.float32)
    if float(np.sqrt(np.mean(audio**2))) < SILENCE_RMS:
        raise TTSError("reference audio is silent", "record speech closer to the microphone")
    clipped = float(np.mean(np.abs(audio) >= CLIP_LEVEL))
    if clipped > MAX_CLIPPED_FRACTION:
        raise TTSError(f"reference audio is clipped ({clipped:.1%} of samples at full scale)",
                       "record again with a lower input gain")
    return audio


def read_reference_file(path: str | Path) -> tuple[np.ndarray, int]:
    """Read an audio file for cloning; unreadable files are a TTSError."""
    import soundfile as sf

    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=False)
    except Exception as exc:  # soundfile raises RuntimeError/LibsndfileError/OSError
        raise TTSError(f"reference audio {path} cannot be read: {exc}", "use a WAV or FLAC file") from None
    return audio, int(rate)
