"""Expected failures, each with a one-line message and a hint for the user.

The CLI catches `SisyphusError`, prints `error: <message> (<hint>)` on one line and exits
with `exit_code`. Anything else is a bug and shows a traceback.
"""

from __future__ import annotations


class SisyphusError(Exception):
    """An expected failure the user can fix; `hint` says how."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message.rstrip(".")
        return f"{text}. {self.hint}" if self.hint else text


class ConfigError(SisyphusError):
    """models.yaml, environment or flags hold an invalid value."""

    exit_code = 2


class AudioInputError(SisyphusError):
    """An audio file cannot be used (missing, empty, corrupt, unsupported)."""


class AudioDeviceError(SisyphusError):
    """No usable microphone/speaker, or a device vanished mid-session."""


class ModelError(SisyphusError):
    """A model folder or checkpoint is missing, incomplete or malformed."""


class LLMError(SisyphusError):
    """The chat endpoint is down, refused the key, or stalled."""


class TTSError(SisyphusError):
    """Text that cannot be spoken, an unknown speaker/language, or a bad clone reference."""


class VoiceError(SisyphusError):
    """The voice library refuses a name, a file or an operation."""


class RemoteError(SisyphusError):
    """A remote ASR/TTS server (vLLM, vLLM-Omni) is down, refused a request or broke off a stream."""
