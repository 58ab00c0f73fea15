"""Finding audio devices by index or name, and listing them for `sisyphus devices`.

`sounddevice` is imported lazily: importing it initialises PortAudio (a side effect that
fixes the device list for the life of the process and fails on machines without
libportaudio), so nothing here touches it until a device is actually needed.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any, Literal

from sisyphus.errors import AudioDeviceError

log = logging.getLogger(__name__)

Kind = Literal["input", "output"]

_DEVICES_HINT = "run `sisyphus devices` to list them"


def sounddevice_module() -> ModuleType:
    """Import sounddevice, turning a missing PortAudio library into a clear error."""
    try:
        import sounddevice
    except OSError as exc:  # raised by sounddevice when libportaudio cannot be loaded
        raise AudioDeviceError(
            f"the PortAudio library cannot be loaded ({exc})",
            "install it (Debian/Ubuntu: apt install libportaudio2), or use --input FILE and --output FILE.wav",
        ) from exc
    return sounddevice


def list_devices() -> list[dict[str, Any]]:
    """Every PortAudio device with its channel counts and whether it is a default."""
    sd = sounddevice_module()
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
    except sd.PortAudioError as exc:
        raise AudioDeviceError(f"cannot query audio devices: {exc}", "check the sound server") from exc
    default_in, default_out = _defaults(sd)
    rows = []
    for dev in devices:
        rows.append(
            {
                "index": int(dev["index"]),
                "name": str(dev["name"]),
                "hostapi": str(hostapis[dev["hostapi"]]["name"]),
                "max_input_channels": int(dev["max_input_channels"]),
                "max_output_channels": int(dev["max_output_channels"]),
                "default_samplerate_hz": float(dev["default_samplerate"]),
                "default_input": int(dev["index"]) == default_in,
                "default_output": int(dev["index"]) == default_out,
            }
        )
    return rows


def resolve_device(spec: str | int | None, kind: Kind) -> int | None:
    """The PortAudio index for a device given by index or case-insensitive name part.

    None (or an empty string) means the system default, which must exist; an exact name
    wins over substring matches, and a name matching several devices is refused rather
    than guessed.
    """
    devices = [d for d in list_devices() if d[f"max_{kind}_channels"] > 0]
    if not devices:
        where = "--input FILE" if kind == "input" else "--output FILE.wav"
        raise AudioDeviceError(f"no audio {kind} device found", f"connect one, or use {where}")
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        if not any(d[f"default_{kind}"] for d in devices):
            raise AudioDeviceError(f"there is no default audio {kind} device", f"pick one by name; {_DEVICES_HINT}")
        return None
    text = str(spec).strip()
    if text.isdigit():
        index = int(text)
        for d in devices:
            if d["index"] == index:
                return index
        raise AudioDeviceError(f"no audio {kind} device with index {index}", _available(devices))
    needle = text.lower()
    exact = [d for d in devices if d["name"].lower() == needle]
    matches = exact or [d for d in devices if needle in d["name"].lower()]
    if len(matches) == 1:
        return int(matches[0]["index"])
    if not matches:
        raise AudioDeviceError(f"no audio {kind} device matches {text!r}", _available(devices))
    names = ", ".join(f"{d['index']}: {d['name']}" for d in matches)
    raise AudioDeviceError(f"{text!r} matches several {kind} devices ({names})", "use the index or a longer name")


def describe_device(index: int | None, kind: Kind) -> str:
    """A short name for logs and the UI."""
    sd = sounddevice_module()
    try:
        info = sd.query_devices(index, kind=kind) if index is None else sd.query_devices(index)
    except (sd.PortAudioError, ValueError):
        return f"{kind} device {index}"
    return f"{info['name']} (#{info['index']})"


def _defaults(sd: ModuleType) -> tuple[int, int]:
    default = sd.default.device
    try:
        default_in, default_out = int(default[0]), int(default[1])
    except (TypeError, ValueError, IndexError):
        default_in = default_out = -1
    return default_in, default_out


def _available(devices: list[dict[str, Any]]) -> str:
    listed = ", ".join(f"{d['index']}: {d['name']}" for d in devices)
    return f"available: {listed}"



def close_stream(stream: Any, timeout_s: float = 2.0) -> bool:
    """Stop a PortAudio stream at once (no draining); False if it had to be abandoned.

    After a sound server or USB device vanishes, Pa_AbortStream can block forever inside
    the host API. Closing therefore runs on a daemon thread that is given `timeout_s`;
    a stream that does not close is left behind, and sounddevice's exit handler (which
    would block on it in Pa_Terminate) is dropped so the process can still exit.
    """
    finished = threading.Event()

    def close() -> None:
        try:
            stream.abort()
            stream.close()
        except Exception as exc:  # PortAudioError, or anything from a half-dead host API
            log.debug("closing audio stream: %s", exc)
        finally:
            finished.set()

    threading.Thread(target=close, name="close-audio-stream", daemon=True).start()
    if finished.wait(timeout_s):
        return True
    log.warning("the audio device did not close within %.0f s; abandoning it", timeout_s)
    sd = sys.modules.get("sounddevice")
    exit_handler = getattr(sd, "_exit_handler", None)
    if exit_handler is not None:
        atexit.unregister(exit_handler)
    return False


def start_stream(
    kind: Kind,
    rate_hz: int,
    block_samples: int,
    index: int | None,
    latency: float | str,
    callback: Callable[..., None],
    finished: Callable[[], None],
    *,
    failure: Callable[[Exception], AudioDeviceError],
) -> Any:
    """Open and start a mono float32 PortAudio stream; `failure` words the error."""
    sd = sounddevice_module()
    factory = sd.InputStream if kind == "input" else sd.OutputStream
    try:
        stream = factory(
            samplerate=rate_hz, channels=1, dtype="float32", blocksize=block_samples, device=index,
            latency=latency, callback=callback, finished_callback=finished,
        )
        stream.start()
    except (sd.PortAudioError, ValueError) as exc:
        raise failure(exc) from exc
    return stream
