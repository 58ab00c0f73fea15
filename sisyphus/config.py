"""Typed, frozen configuration: the only place models.yaml and the environment are read.

Precedence: defaults < models.yaml (or --config / SISYPHUS_CONFIG) < environment < flags.
Loading rejects unknown keys, wrong types and out-of-range values with the dotted path,
the value and what is allowed, e.g. ``vad.threshold: must be in (0, 1), got 1.5``.
Secrets (the API key) come from the environment only, never from YAML.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from sisyphus.errors import ConfigError

Device = str  # auto | cpu | cuda | cuda:N
DType = Literal["auto", "bf16", "fp16", "fp32"]
MemoryStrategy = Literal["resident", "lazy-tts", "swap"]
TurnModelName = Literal["smart-turn", "none"]
EchoMode = Literal["auto", "on", "off"]


def _rule(check: str, lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
    return {"check": check, "lo": lo, "hi": hi}


@dataclass(frozen=True)
class ModelsConfig:
    # Hub repo id or local folder of each model.
    asr: str = field(default="zai-org/GLM-ASR-Nano-2512", metadata=_rule("text"))
    tts_base: str = field(default="Qwen/Qwen3-TTS-12Hz-1.7B-Base", metadata=_rule("text"))
    tts_custom: str = field(default="Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice", metadata=_rule("text"))
    # Where `models pull` stores downloads; None means huggingface_hub's cache (HF_HOME).
    cache_dir: str | None = None


@dataclass(frozen=True)
class VoiceConfig:
    # A preset speaker of the CustomVoice model (e.g. "vivian") or a cloned voice's name.
    default: str = field(default="vivian", metadata=_rule("text"))
    # Language passed to TTS: "auto" or one of the model's languages ("english", ...).
    language: str = field(default="auto", metadata=_rule("text"))
    # Folder of cloned voices; relative paths are resolved against the config file.
    library: str = field(default="voices", metadata=_rule("text"))
    # Optional speaking-style text for preset speakers (1.7B CustomVoice only).
    instruct: str = ""


@dataclass(frozen=True)
class VadConfig:
    # Silero speech probability above which a 512-sample frame counts as speech.
    threshold: float = field(default=0.5, metadata=_rule("open", 0.0, 1.0))
    # Speech needed before a turn starts (shorter blips are ignored).
    min_speech_ms: int = field(default=200, metadata=_rule("closed", 32, 5000))
    # Silence that ends a turn.
    min_silence_ms: int = field(default=400, metadata=_rule("closed", 64, 10000))
    # Audio kept from before speech-start so first syllables survive.
    pre_roll_ms: int = field(default=320, metadata=_rule("closed", 0, 2000))
    # Longer speech is cut into pieces of at most this length (the ASR window).
    max_utterance_s: float = field(default=25.0, metadata=_rule("closed", 1.0, 30.0))
    # End of turn: "smart-turn" asks Smart Turn v3.2 (packaged with pipecat-ai) whether the
    # speech so far is a finished turn; "none" ends every turn after min_silence_ms.
    turn_model: TurnModelName = "smart-turn"
    # Smart Turn's probability at or above which a turn counts as finished.
    turn_threshold: float = field(default=0.5, metadata=_rule("open", 0.0, 1.0))
    # Silence after which Smart Turn is asked; the turn ends there when it says finished.
    complete_silence_ms: int = field(default=200, metadata=_rule("closed", 32, 5000))
    # Silence that ends a turn Smart Turn called unfinished.
    incomplete_silence_ms: int = field(default=1500, metadata=_rule("closed", 64, 10000))
    # Silence after which a reply is prepared ahead (held back until the turn ends there,
    # dropped unheard when speech resumes); null: no preemptive replies.
    preempt_silence_ms: int | None = field(default=96, metadata=_rule("closed", 32, 5000))
    # Voiced audio after which a reply in flight pauses (barge-in); it resumes if the sound
    # stops short of min_speech_ms, and a backchannel resumes it too (see backchannel).
    pause_after_ms: int = field(default=96, metadata=_rule("closed", 32, 5000))


@dataclass(frozen=True)
class LlmConfig:
    base_url: str = field(default="https://api.openai.com/v1", metadata=_rule("url"))
    model: str = field(default="gpt-4o-mini", metadata=_rule("text"))
    system_prompt: str = (
        "You are Sisyphus, a friendly voice assistant. Answer briefly, in plain spoken "
        "sentences without lists, markdown or emoji."
    )
    temperature: float = field(default=0.7, metadata=_rule("closed", 0.0, 2.0))
    # Past user/assistant exchanges sent with each request.
    max_history_turns: int = field(default=20, metadata=_rule("closed", 0, 1000))
    max_tokens: int = field(default=512, metadata=_rule("closed", 1, 32768))
    # Time allowed to connect and for each streamed chunk to arrive.
    timeout_s: float = field(default=30.0, metadata=_rule("open", 0.0, 600.0))
    # Retries (with backoff) when the endpoint cannot be reached.
    max_retries: int = field(default=2, metadata=_rule("closed", 0, 10))
    # Secret: read from OPENAI_API_KEY only.
    api_key: str = field(default="", repr=False, metadata={"env_only": True})


@dataclass(frozen=True)
class AudioConfig:
    # Device index or (part of a) name; None is the system default.
    input_device: str | None = None
    output_device: str | None = None
    # Microphone block handed to the loop (one Silero frame is 32 ms).
    input_block_ms: int = field(default=32, metadata=_rule("closed", 8, 256))
    # Speaker block: playback can be stopped within one block.
    output_block_ms: int = field(default=20, metadata=_rule("closed", 5, 200))
    # Cancel the speaker's echo in the microphone (WebRTC AEC3) so barge-in works with open
    # speakers: auto = whenever a microphone and a sound output device are in use.
    echo_cancellation: EchoMode = "auto"
    # WebRTC noise suppression and high-pass filter on the microphone, before VAD.
    noise_suppression: bool = True
    high_pass_filter: bool = True


BACKCHANNELS = (
    "mm", "mhm", "mm-hm", "hm", "uh-huh", "ah", "oh", "yeah", "yes", "yep", "ok", "okay", "right", "sure",
    "i see", "got it", "嗯", "对", "好", "好的", "是", "是的", "对的", "哦", "啊",
)  # fmt: skip


@dataclass(frozen=True)
class BackchannelConfig:
    # Speech during a reply pauses it. If the speech ends within this time and ASR finds no
    # words or only backchannels, the reply resumes; otherwise it is cancelled (turn taken).
    max_speech_ms: int = field(default=1500, metadata=_rule("closed", 100, 10000))
    # What counts as a backchannel: case, punctuation and repeats ("yeah yeah") are ignored.
    words: tuple[str, ...] = BACKCHANNELS


@dataclass(frozen=True)
class TtsConfig:
    # Codec frames (80 ms each) generated before the first audio chunk is played.
    first_chunk_frames: int = field(default=2, metadata=_rule("closed", 1, 50))
    # Frames per later chunk.
    chunk_frames: int = field(default=4, metadata=_rule("closed", 1, 100))
    # Fixed seed for reproducible sampling; None samples freshly each reply.
    seed: int | None = None
    # Length guard: no phrase generates more than this many seconds of audio.
    max_seconds_per_phrase: float = field(default=40.0, metadata=_rule("open", 0.0, 600.0))


@dataclass(frozen=True)
class RemoteConfig:
    # Base URL (ending in /v1) of a vLLM server running GLM-ASR; "" runs ASR in this process.
    asr_url: str = ""
    # vLLM-Omni server of the CustomVoice model (preset voices); "" runs it in this process.
    tts_custom_url: str = ""
    # vLLM-Omni server of the Base model (cloned voices); "" runs it in this process.
    tts_base_url: str = ""
    # How remote TTS audio arrives: "audio" (raw 24 kHz PCM) or "sse" (base64 events).
    tts_stream_format: Literal["audio", "sse"] = "audio"
    # Time allowed to connect, for the first byte, and between two pieces of a stream.
    timeout_s: float = field(default=10.0, metadata=_rule("open", 0.0, 600.0))
    # Retries (with backoff) of a request that failed before its first byte.
    max_retries: int = field(default=1, metadata=_rule("closed", 0, 10))
    # Secrets: read from SISYPHUS_ASR_API_KEY, SISYPHUS_TTS_CUSTOM_API_KEY, SISYPHUS_TTS_BASE_API_KEY only.
    asr_api_key: str = field(default="", repr=False, metadata={"env_only": True})
    tts_custom_api_key: str = field(default="", repr=False, metadata={"env_only": True})
    tts_base_api_key: str = field(default="", repr=False, metadata={"env_only": True})


@dataclass(frozen=True)
class Config:
    device: Device = field(default="auto", metadata={"check": "device"})
    dtype: DType = "auto"
    memory: MemoryStrategy = "resident"
    # Full duplex: speaking during a reply interrupts it. False ignores the mic while speaking.
    barge_in: bool = True
    models: ModelsConfig = ModelsConfig()
    voice: VoiceConfig = VoiceConfig()
    vad: VadConfig = VadConfig()
    llm: LlmConfig = LlmConfig()
    audio: AudioConfig = AudioConfig()
    tts: TtsConfig = TtsConfig()
    remote: RemoteConfig = RemoteConfig()
    backchannel: BackchannelConfig = BackchannelConfig()
    # Folder the config was read from (relative paths resolve against it).
    base_dir: str = field(default=".", metadata={"internal": True})


# Environment variables and the dotted path each one sets (documented in .env.example).
ENV_VARS: dict[str, str] = {
    "OPENAI_API_KEY": "llm.api_key",
    "OPENAI_BASE_URL": "llm.base_url",
    "SISYPHUS_LLM_MODEL": "llm.model",
    "SISYPHUS_DEVICE": "device",
    "SISYPHUS_DTYPE": "dtype",
    "SISYPHUS_MEMORY": "memory",
    "SISYPHUS_VOICE": "voice.default",
    "SISYPHUS_LANGUAGE": "voice.language",
    "SISYPHUS_VOICES_DIR": "voice.library",
    "SISYPHUS_ASR_MODEL": "models.asr",
    "SISYPHUS_TTS_BASE_MODEL": "models.tts_base",
    "SISYPHUS_TTS_CUSTOM_MODEL": "models.tts_custom",
    "SISYPHUS_INPUT_DEVICE": "audio.input_device",
    "SISYPHUS_OUTPUT_DEVICE": "audio.output_device",
    "SISYPHUS_ASR_URL": "remote.asr_url",
    "SISYPHUS_TTS_CUSTOM_URL": "remote.tts_custom_url",
    "SISYPHUS_TTS_BASE_URL": "remote.tts_base_url",
    "SISYPHUS_ASR_API_KEY": "remote.asr_api_key",
    "SISYPHUS_TTS_CUSTOM_API_KEY": "remote.tts_custom_api_key",
    "SISYPHUS_TTS_BASE_API_KEY": "remote.tts_base_api_key",
    "SISYPHUS_ECHO_CANCELLATION": "audio.echo_cancellation",
}

DEFAULT_CONFIG_NAME = "models.yaml"
# A file full of mistakes gets the first ones, not a screen per key.
MAX_ERRORS_SHOWN = 20


def default_config_path() -> Path | None:
    """The config used without --config: SISYPHUS_CONFIG, else ./models.yaml if present."""
    env = os.environ.get("SISYPHUS_CONFIG")
    if env:
        return Path(env)
    local = Path.cwd() / DEFAULT_CONFIG_NAME
    return local if local.is_file() else None


def load_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the config from file, environment and flag overrides (dotted paths)."""
    raw: dict[str, Any] = {}
    base_dir = Path.cwd()
    env = os.environ if env is None else env
    if path is not None:
        path = Path(path)
        raw = _read_yaml(path, from_env=str(path) == env.get("SISYPHUS_CONFIG"))
        base_dir = path.resolve().parent
    errors: list[str] = []
    file_llm = raw.get("llm")
    if isinstance(file_llm, dict) and "api_key" in file_llm:
        errors.append("llm.api_key: secrets are not read from YAML, set OPENAI_API_KEY instead")
    errors.extend(_secrets_in_yaml(raw.get("remote")))
    for var, dotted in ENV_VARS.items():
        if env.get(var):
            _set_dotted(raw, dotted, env[var])
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(raw, dotted, value)
    raw["base_dir"] = str(base_dir)
    config = _build(Config, raw, "", errors)
    if errors:
        if len(errors) > MAX_ERRORS_SHOWN:
            errors[MAX_ERRORS_SHOWN:] = [f"... and {len(errors) - MAX_ERRORS_SHOWN} more"]
        raise ConfigError(
            "invalid configuration: " + "; ".join(errors),
            f"fix {path}" if path else "fix the flags or environment variables",
        )
    return config


def _secrets_in_yaml(section: Any) -> list[str]:
    """remote.*_api_key in the file: each names the environment variable to use instead."""
    if not isinstance(section, dict):
        return []
    by_path = {dotted: var for var, dotted in ENV_VARS.items()}
    return [
        f"remote.{key}: secrets are not read from YAML, set {by_path[f'remote.{key}']} instead"
        for key in section
        if key.endswith("_api_key") and f"remote.{key}" in by_path
    ]


def resolve_path(config: Config, value: str) -> Path:
    """A path from the config, relative to the config file's folder."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else Path(config.base_dir) / p


def _read_yaml(path: Path, from_env: bool = False) -> dict[str, Any]:
    from sisyphus.yamlread import preview, read_yaml_file

    where = "SISYPHUS_CONFIG" if from_env else "--config"
    if path.is_dir():
        raise ConfigError(f"config {path} is a folder, not a file", f"point {where} at a models.yaml file")
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist", f"point {where} at an existing models.yaml")
    data = read_yaml_file(path, ConfigError, "check indentation and quoting")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path} must hold a mapping at the top level, got {preview(data)}", "see models.yaml in the repo"
        )
    return data


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = raw
    for key in parents:
        node = node.setdefault(key, {}) if isinstance(node.get(key, {}), dict) else {}
    node[leaf] = value


def _build(cls: type, raw: Any, prefix: str, errors: list[str]) -> Any:
    from sisyphus.yamlread import preview

    if raw is None:  # a section with nothing under it (`llm:`) keeps its defaults
        return cls()
    if not isinstance(raw, dict):
        errors.append(f"{prefix.rstrip('.')}: must be a mapping, got {preview(raw)}")
        return cls()
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in known:
            allowed = ", ".join(sorted(k for k in known if k != "base_dir"))
            errors.append(f"{prefix}{_key_text(key)}: unknown key (allowed: {allowed})")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            continue
        path = prefix + f.name
        if dataclasses.is_dataclass(hints[f.name]):
            values[f.name] = _build(hints[f.name], raw[f.name], path + ".", errors)
            continue
        ok, value = _coerce(raw[f.name], hints[f.name])
        if not ok:
            errors.append(f"{path}: must be {_describe(hints[f.name])}, got {preview(raw[f.name])}")
            continue
        problem = _check_range(value, f.metadata)
        if problem:
            shown = value if isinstance(raw[f.name], str) else raw[f.name]  # 10**400, not inf
            if f.metadata.get("check") == "url":
                shown = re.sub(r"//[^/@]*@", "//***@", str(value))
            errors.append(f"{path}: {problem}, got {preview(shown)}")
            continue
        values[f.name] = value
    return cls(**values)


def _key_text(key: Any) -> str:
    """A key as the user wrote it; long or odd keys (aliases, numbers) as a short repr."""
    from sisyphus.yamlread import preview

    if isinstance(key, str) and re.fullmatch(r"[\w-]{1,40}", key):
        return key
    return preview(key)


def _coerce(value: Any, hint: Any) -> tuple[bool, Any]:
    """Accept a value of the declared type; strings from env/flags are parsed."""
    origin = get_origin(hint)
    if origin is Literal:
        if isinstance(value, bool) and {"on", "off"} <= set(get_args(hint)):
            value = "on" if value else "off"  # YAML 1.1 reads a bare on/off as a boolean
        return (value in get_args(hint), value)
    if origin is tuple:
        if isinstance(value, str):  # from the environment or a flag: comma-separated
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) and v.strip() for v in value):
            return True, tuple(v.strip() for v in value)
        return False, value
    if origin in (Union, types.UnionType):
        args = get_args(hint)
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none", "") and type(None) in args):
            return (type(None) in args, None)
        for arg in args:
            if arg is type(None):
                continue
            ok, coerced = _coerce(value, arg)
            if ok:
                return True, coerced
        return False, value
    if hint is bool:
        if isinstance(value, bool):
            return True, value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return True, value.lower() in ("true", "1", "yes", "on")
        return False, value
    if hint is int:
        if isinstance(value, bool):
            return False, value
        if isinstance(value, int):
            return True, value
        if isinstance(value, str):
            try:
                return True, int(value)
            except ValueError:
                return False, value
        return False, value
    if hint is float:
        if isinstance(value, bool):
            return False, value
        if isinstance(value, (int, float)):
            try:
                return True, float(value)
            except OverflowError:  # an integer of hundreds of digits: out of any range
                return True, math.inf if value > 0 else -math.inf
        if isinstance(value, str):
            try:
                return True, float(value)
            except ValueError:
                return False, value
        return False, value
    if hint is str:
        if isinstance(value, bool) or isinstance(value, (dict, list)):
            return False, value
        return (value is not None, str(value) if value is not None else value)
    return False, value


def _describe(hint: Any) -> str:
    origin = get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(hint))
    if origin is tuple:
        return "a list of non-empty strings"
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(hint))
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        hint, "null" if hint is type(None) else str(hint)
    )


def _check_range(value: Any, meta: Mapping[str, Any]) -> str | None:
    check = meta.get("check")
    if check == "device":
        v = str(value)
        if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
            return None
        return "must be auto, cpu, cuda or cuda:N"
    if check == "text":
        return None if str(value).strip() else "must not be empty"
    if check == "url":
        return _url_problem(str(value))
    if value is None or check is None:
        return None
    lo, hi = meta["lo"], meta["hi"]
    if check == "open" and not (lo < value < hi):
        return f"must be in ({lo:g}, {hi:g})"
    if check == "closed" and not (lo <= value <= hi):
        return f"must be in [{lo:g}, {hi:g}]"
    return None


def _url_problem(url: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is not None and parts.scheme in ("http", "https") and host:
        return None
    return "must be an http:// or https:// URL with a host (e.g. http://localhost:11434/v1)"
