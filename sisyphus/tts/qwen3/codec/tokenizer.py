"""SpeechTokenizer: the Qwen3-TTS 12 Hz speech tokenizer, loaded from the official files.

encode: 24 kHz audio -> codes [T, 16] (12.5 frames a second), used for clone references.
decode: codes [T, 16] -> 24 kHz audio, one-shot, exactly as the official tokenizer decodes.
stream_decoder: the same audio, a few frames at a time, for speaking while generating.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sisyphus.errors import TTSError

from .config import CONFIG_FILE, EXTRA_FILES, WEIGHTS_FILE, CodecConfig
from .decoder import CHUNK_FRAMES, LEFT_CONTEXT_FRAMES, Decoder
from .encoder import Encoder
from .random_init import randomize_
from .streaming import StreamingDecoder, check_codes
from .weights import load_strict, read_safetensors, save_safetensors

log = logging.getLogger(__name__)


class CodecModel(nn.Module):
    """Holds the two halves under the checkpoint's top-level names `encoder.` / `decoder.`."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        self.encoder = Encoder(cfg.encoder)
        self.decoder = Decoder(cfg.decoder)


class SpeechTokenizer:
    def __init__(self, model: CodecModel, config: CodecConfig) -> None:
        self.model = model.eval()
        self.config = config
        self.sample_rate_hz: int = config.sample_rate_hz
        self.samples_per_frame: int = config.samples_per_frame
        self.num_codebooks: int = config.num_codebooks

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @classmethod
    def from_pretrained(
        cls,
        folder: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> SpeechTokenizer:
        """Load a speech_tokenizer/ folder; refuses tensors missing, extra or mis-shaped."""
        folder = Path(folder)
        config = CodecConfig.from_folder(folder)
        tensors = read_safetensors(folder / WEIGHTS_FILE)
        with torch.device("meta"):
            model = CodecModel(config)
        load_strict(model, tensors, str(folder / WEIGHTS_FILE), device=torch.device(device), dtype=dtype)
        log.info("loaded speech tokenizer from %s (%s, %s)", folder, device, dtype)
        return cls(model, config)

    @classmethod
    def random(
        cls, config_folder: str | Path, *, seed: int = 0, shrink: dict[str, Any] | None = None
    ) -> SpeechTokenizer:
        """Random fp32 weights for a config (optionally shrunk, see config.TINY_SHRINK)."""
        config = CodecConfig.from_folder(config_folder, shrink=shrink)
        model = CodecModel(config)
        randomize_(model, seed)
        return cls(model, config)

    def save_pretrained(self, folder: str | Path) -> None:
        """Write config.json, the two small official json files and model.safetensors."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_FILE).write_text(json.dumps(self.config.raw, indent=2) + "\n", encoding="utf-8")
        for name, content in EXTRA_FILES.items():
            (folder / name).write_text(content, encoding="utf-8")
        save_safetensors(self.model, folder / WEIGHTS_FILE)

    def encode(self, audio: np.ndarray | torch.Tensor, sample_rate_hz: int = 24000) -> torch.LongTensor:
        """Mono audio (or [samples, channels], averaged) -> codes [frames, num_codebooks] on CPU."""
        wav = _prepare_audio(audio, sample_rate_hz, self.sample_rate_hz)
        frames = -(-wav.shape[0] // self.config.encode_hop)
        x = torch.from_numpy(wav).to(self.device, self.dtype).view(1, 1, -1)
        with torch.inference_mode():
            codes = self.model.encoder(x, self.num_codebooks)
        return codes[0, :, :frames].T.contiguous().cpu()

    def decode(self, codes: torch.Tensor | np.ndarray) -> np.ndarray:
        """Codes [T, num_codebooks] -> float32 audio [T * samples_per_frame], one shot."""
        cfg = self.config.decoder
        codes = check_codes(codes, cfg.num_quantizers, cfg.codebook_size)
        if codes.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        batch = codes.to(self.device).T.unsqueeze(0)
        with torch.inference_mode():
            wav = self.model.decoder.chunked(batch, CHUNK_FRAMES, LEFT_CONTEXT_FRAMES)
        return wav[0, 0].to(torch.float32).cpu().numpy()

    def stream_decoder(
        self, left_context_frames: int = LEFT_CONTEXT_FRAMES, chunk_frames: int = CHUNK_FRAMES
    ) -> StreamingDecoder:
        """A decoder fed frame by frame; equals `decode` with the default window settings."""
        return StreamingDecoder(
            self.model.decoder, chunk_frames=chunk_frames, left_context_frames=left_context_frames
        )


def _prepare_audio(audio: np.ndarray | torch.Tensor, rate_hz: int, target_hz: int) -> np.ndarray:
    """Mono float32 at the codec rate, resampled with librosa like the official tokenizer."""
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu()
        audio = (audio.float() if audio.is_floating_point() else audio).numpy()
    audio = np.asarray(audio)
    if not np.issubdtype(audio.dtype, np.floating) or audio.ndim not in (1, 2):
        raise TTSError(
            f"audio must be a 1-D float array (or [samples, channels]), "
            f"got {audio.dtype} {list(audio.shape)}",
            "pass float samples in [-1, 1]",
        )
    if audio.ndim == 2:
        if audio.shape[1] > 8:
            raise TTSError(
                f"audio of shape {list(audio.shape)} looks like [channels, samples]",
                "pass [samples, channels] (as soundfile reads it) or mono samples",
            )
        audio = audio.mean(axis=-1)
    if audio.size == 0:
        raise TTSError("audio is empty", "pass at least a few hundred milliseconds of speech")
    if not np.all(np.isfinite(audio)):
        raise TTSError("audio contains NaN or infinite samples", "check the file or the recording")
    if not isinstance(rate_hz, (int, np.integer)) or rate_hz <= 0:
        raise TTSError(
            f"sample rate must be a positive integer, got {rate_hz!r}", "pass the file's rate in Hz"
        )
    audio = audio.astype(np.float32)
    if rate_hz != target_hz:
        import librosa  # deferred: heavy import, only needed for non-24 kHz input

        audio = librosa.resample(y=audio, orig_sr=int(rate_hz), target_sr=target_hz).astype(np.float32)
    return audio
