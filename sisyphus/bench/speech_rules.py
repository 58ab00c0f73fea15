"""What the stand-in speech servers accept: vLLM's transcription API and vLLM-Omni's speech API.

The rules follow the two projects' documentation and request models (2026): vLLM's
`POST /v1/audio/transcriptions` (multipart `file`, `model`, `language` as an ISO 639-1
code) and vLLM-Omni's `POST /v1/audio/speech` with Qwen3-TTS's checks (task type per
checkpoint, language names, preset speakers, the clone fields only for Base, even when
false). They are stricter than the real servers in one way on purpose: a field neither
documents is refused instead of silently dropped, so a typo in a request fails a test.

Each check returns None or (HTTP status, message); the server turns that into the error
JSON vLLM sends. Audio is only accepted as PCM WAV, which is all Sisyphus sends.
"""

from __future__ import annotations

import base64
import binascii
import io
import wave
from dataclasses import dataclass
from typing import Any

import numpy as np

ASR_MODEL = "zai-org/GLM-ASR-Nano-2512"
CUSTOM_MODEL = "Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice"
BASE_MODEL = "Qwen/Qwen3-TTS-12Hz-1.7B-Base"
SPEAKERS = ("aiden", "dylan", "eric", "ono_anna", "ryan", "serena", "sohee", "uncle_fu", "vivian")
TTS_LANGUAGES = ("Auto", "Chinese", "English", "Japanese", "Korean", "German", "French", "Russian",
                 "Portuguese", "Spanish", "Italian")
ASR_LANGUAGES = ("en", "zh", "ja", "ko", "de", "fr", "ru", "pt", "es", "it", "nl", "ar", "hi")
ASR_FIELDS = {"file", "model", "language", "prompt", "response_format", "temperature",
              "timestamp_granularities[]", "stream", "stream_include_usage"}
SPEECH_FIELDS = {"input", "model", "voice", "speaker", "instructions", "response_format", "sample_rate", "speed",
                 "stream_format", "stream", "task_type", "language", "ref_audio", "ref_text", "x_vector_only_mode",
                 "speaker_embedding", "max_new_tokens", "seed", "initial_codec_chunk_frames", "non_streaming_mode",
                 "extra_params"}
REF_AUDIO_SECONDS = (1.0, 30.0)
MAX_INSTRUCTIONS_CHARS = 500
MAX_NEW_TOKENS = 4096

Problem = tuple[int, str] | None


@dataclass(frozen=True)
class Wav:
    rate_hz: int
    channels: int
    samples: np.ndarray  # float32, channels interleaved

    @property
    def seconds(self) -> float:
        return self.samples.size / self.channels / self.rate_hz


def read_wav(data: bytes) -> Wav | None:
    """A 16-bit PCM WAV, or None for anything else."""
    try:
        with wave.open(io.BytesIO(data)) as wav:
            if wav.getsampwidth() != 2 or wav.getcomptype() != "NONE":
                return None
            raw = wav.readframes(wav.getnframes())
            return Wav(wav.getframerate(), wav.getnchannels(), np.frombuffer(raw, "<i2").astype(np.float32) / 32768)
    except (wave.Error, EOFError):
        return None


def check_transcription(fields: dict[str, str], files: dict[str, tuple[str, bytes]], model: str) -> Problem:
    """vLLM's transcription request checks, in the order the server makes them."""
    unknown = sorted((set(fields) | set(files)) - ASR_FIELDS)
    if unknown:
        return 400, f"Unknown field(s): {', '.join(unknown)}"
    if "model" in fields and fields["model"] != model:
        return 404, f"The model `{fields['model']}` does not exist."
    if "file" not in files:
        return 400, "Field required: file"
    language = fields.get("language")
    if language is not None and language not in ASR_LANGUAGES:
        return 400, f"Unsupported language: {language!r}. Language should be one of: {list(ASR_LANGUAGES)}"
    if fields.get("response_format", "json") not in ("json", "text", "verbose_json"):
        return 400, f"Unsupported response_format {fields['response_format']!r}"
    if read_wav(files["file"][1]) is None:
        return 400, "Invalid or unsupported audio file"
    return None


def check_speech(body: Any, kind: str, model: str) -> Problem:
    """vLLM-Omni's speech request checks for a Qwen3-TTS `kind` ("custom" or "base") server."""
    if not isinstance(body, dict):
        return 400, "The request body must be a JSON object"
    unknown = sorted(set(body) - SPEECH_FIELDS)
    if unknown:
        return 400, f"Unknown field(s): {', '.join(unknown)}"
    if body.get("model") is not None and body["model"] != model:
        return 404, f"The model `{body['model']}` does not exist."
    return _types(body) or _streaming(body) or _qwen3(body, kind)


def _types(body: dict[str, Any]) -> Problem:
    expected = {"input": str, "voice": str, "instructions": str, "language": str, "ref_audio": str, "ref_text": str,
                "x_vector_only_mode": bool, "max_new_tokens": int, "seed": int, "initial_codec_chunk_frames": int,
                "stream": bool, "non_streaming_mode": bool}
    if "input" not in body:
        return 400, "Field required: input"
    for name, kind in expected.items():
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return 400, f"{name}: Input should be a valid {kind.__name__}, got {value!r}"
    if body.get("task_type") not in (None, "CustomVoice", "VoiceDesign", "Base"):
        return 400, f"task_type: Input should be 'CustomVoice', 'VoiceDesign' or 'Base', got {body['task_type']!r}"
    if body.get("response_format", "wav") not in ("wav", "pcm", "flac", "mp3", "opus"):
        return 400, f"response_format: unsupported {body['response_format']!r}"
    return None


def _streaming(body: dict[str, Any]) -> Problem:
    if body.get("stream_format") not in (None, "sse", "audio"):
        return 400, f"stream_format: Input should be 'sse' or 'audio', got {body['stream_format']!r}"
    streaming = body.get("stream_format") is not None or body.get("stream")
    if streaming and body.get("response_format", "wav") not in ("pcm", "wav"):
        return 400, "Streaming requires response_format='pcm' or 'wav'."
    if streaming and body.get("speed", 1.0) != 1.0:
        return 400, "Streaming requires speed=1.0"
    return None


def _qwen3(body: dict[str, Any], kind: str) -> Problem:
    variant = "Base" if kind == "base" else "CustomVoice"
    task = body.get("task_type")
    if task is None and (body.get("ref_audio") is not None or body.get("ref_text") is not None):
        task = "Base"
    task = task or "CustomVoice"
    if task != variant:
        return 400, (f"Qwen3-TTS {variant} checkpoint does not support task_type='{task}'. "
                     f"Use task_type='{variant}' or load the matching {task} checkpoint.")
    if not body["input"].strip():
        return 400, "Input text cannot be empty"
    language = body.get("language")
    if language is not None and language.title() not in TTS_LANGUAGES:
        return 400, f"Invalid language '{language.title()}'. Supported: {', '.join(sorted(TTS_LANGUAGES))}"
    voice = body.get("voice")
    if task == "CustomVoice" and voice is not None and voice.lower() not in SPEAKERS:
        return 400, f"Invalid voice '{voice.lower()}'. Supported: {', '.join(SPEAKERS)}"
    if task == "Base":
        problem = _clone(body)
        if problem:
            return problem
    else:
        for name in ("ref_text", "x_vector_only_mode"):
            if body.get(name) is not None:
                return 400, f"'{name}' is only valid for Base task"
    if len(body.get("instructions") or "") > MAX_INSTRUCTIONS_CHARS:
        return 400, f"Instructions too long (max {MAX_INSTRUCTIONS_CHARS} characters)"
    tokens = body.get("max_new_tokens")
    if tokens is not None and not 1 <= tokens <= MAX_NEW_TOKENS:
        return 400, f"max_new_tokens must be in [1, {MAX_NEW_TOKENS}]"
    if (body.get("initial_codec_chunk_frames") or 0) < 0:
        return 400, "initial_codec_chunk_frames must be >= 0"
    return None


def _clone(body: dict[str, Any]) -> Problem:
    ref = body.get("ref_audio")
    if ref is None:
        return 400, "Base task requires 'ref_audio' or 'speaker_embedding' for voice cloning"
    if not ref.startswith(("http://", "https://", "data:", "file://")):
        return 400, "ref_audio must be a URL (http/https), base64 data URL (data:...), or file URI (file://...)"
    wav = reference_wav(ref)
    if wav is None:
        return 400, "ref_audio could not be decoded as audio"
    low, high = REF_AUDIO_SECONDS
    if not low <= wav.seconds <= high:
        return 400, f"ref_audio must be {low:g}-{high:g} s long, got {wav.seconds:.1f} s"
    if not body.get("x_vector_only_mode") and not (body.get("ref_text") or "").strip():
        return 400, ("Base task requires non-empty 'ref_text' (transcript of the reference audio) "
                     "unless 'x_vector_only_mode' is enabled")
    return None


def reference_wav(data_url: str) -> Wav | None:
    """The WAV inside a `data:audio/...;base64,` URL (the only kind the stand-in decodes)."""
    head, _, payload = data_url.partition(",")
    if not head.startswith("data:audio/") or not head.endswith(";base64"):
        return None
    try:
        return read_wav(base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError):
        return None


def error_body(status: int, message: str) -> dict[str, Any]:
    kind = {400: "BadRequestError", 401: "AuthenticationError", 404: "NotFoundError"}.get(status, "InternalServerError")
    return {"error": {"message": message, "type": kind, "param": "model" if status == 404 else None, "code": status}}
