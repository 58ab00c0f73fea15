"""The microphone and speaker side of the voice commands: `clone --record` and `say`.

Recording shows a countdown, then a level meter, so the user sees at once whether the
microphone hears them; the result is upsampled from the microphone's 16 kHz to the
library's 24 kHz and checked like any file. Playback plays the whole clip on the
configured speaker and returns once it has been heard.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

import numpy as np
from scipy.signal import resample_poly

from sisyphus.config import Config
from sisyphus.errors import AudioDeviceError, ConfigError
from sisyphus.frames import MIC_RATE_HZ, SPEAKER_RATE_HZ

Say = Callable[[str], None]

MAX_RECORD_SECONDS = 60.0
COUNTDOWN_SECONDS = 3
METER_WIDTH = 30
# Meter scale: -60 dBFS is an empty bar, 0 dBFS a full one.
METER_FLOOR_DBFS = -60.0
# Silence played before a clip: a stream's first blocks can glitch while it starts.
LEAD_IN_S = 0.25


def level_meter(block: np.ndarray) -> str:
    """A text bar for one block's RMS level, e.g. `[#########.....]  -21 dBFS`."""
    rms = float(np.sqrt(np.mean(np.square(block, dtype=np.float64)))) if block.size else 0.0
    dbfs = 20.0 * math.log10(max(rms, 1e-9))
    filled = int(round(METER_WIDTH * min(1.0, max(0.0, 1.0 - dbfs / METER_FLOOR_DBFS))))
    return f"[{'#' * filled}{'.' * (METER_WIDTH - filled)}] {max(dbfs, METER_FLOOR_DBFS):4.0f} dBFS"


async def _record(cfg: Config, seconds: float, say: Say, meter: Say) -> np.ndarray:
    from sisyphus.audio.source import MicSource

    wanted = int(seconds * MIC_RATE_HZ)
    blocks: list[np.ndarray] = []
    got = 0
    async with MicSource(cfg.audio.input_device, block_ms=cfg.audio.input_block_ms) as mic:
        say(f"microphone: {mic.device_name}")
        for left in range(COUNTDOWN_SECONDS, 0, -1):
            say(f"recording in {left}...")
            await asyncio.sleep(1.0)  # a countdown for the user, not a wait for an event
        say(f"recording {seconds:g} s: speak now")
        started_s = time.monotonic()  # MicSource stamps blocks with this clock
        async for block in mic:
            if block.t_s < started_s:
                continue  # heard during the countdown
            blocks.append(block.samples)
            got += block.samples.size
            meter(f"\r{got / MIC_RATE_HZ:5.1f} s {level_meter(block.samples)}")
            if got >= wanted:
                break
    meter("\n")
    say("recording done")
    audio = np.concatenate(blocks)[:wanted]
    return resample_poly(audio, SPEAKER_RATE_HZ // 8000, MIC_RATE_HZ // 8000).astype(np.float32)


def record_reference(cfg: Config, seconds: float, say: Say, meter: Say) -> np.ndarray:
    """Record `seconds` from the configured microphone; 24 kHz mono float32.

    `say` prints a line, `meter` writes without a newline (the level meter redraws itself).
    """
    if not 0 < seconds <= MAX_RECORD_SECONDS:
        raise ConfigError(
            f"--record must be in (0, {MAX_RECORD_SECONDS:g}] seconds, got {seconds:g}",
            "10 seconds of speech is a good reference",
        )
    return asyncio.run(_record(cfg, seconds, say, meter))


def play(cfg: Config, samples: np.ndarray) -> None:
    """Play 24 kHz samples on the configured speaker and return once they were heard.

    A blocking PortAudio stream that stops by draining: SpeakerSink closes by aborting
    (right for barge-in), which on PulseAudio cut off most of a short clip.
    """
    from sisyphus.audio.devices import describe_device, resolve_device, sounddevice_module

    sd = sounddevice_module()
    index = resolve_device(cfg.audio.output_device, "output")
    lead_in = np.zeros(int(LEAD_IN_S * SPEAKER_RATE_HZ), dtype=np.float32)
    try:
        sd.play(np.concatenate([lead_in, samples]), SPEAKER_RATE_HZ, device=index, blocking=True)
    except (sd.PortAudioError, ValueError) as exc:
        raise AudioDeviceError(
            f"cannot play on {describe_device(index, 'output')}: {exc}",
            "pick another with audio.output_device (see `sisyphus devices`), or use --output FILE.wav",
        ) from exc
