"""A virtual room with an echo: a private PulseAudio whose speaker leaks into the microphone.

Used by `sisyphus bench aec` and by the open-speaker tests. Two null sinks and a loopback
make an acoustic echo path: `spk` is the speaker Sisyphus plays to, the loopback carries
its monitor (delayed by `delay_ms`, scaled by `echo_gain`) into `room`, the air; the
default microphone is `room.monitor`, which hears that echo and whatever is played
straight into `room` (the user, by `play_user`).

    with virtual_room(delay_ms=60) as room:
        ... SpeakerSink(None) / MicSource(None) now open spk / room.monitor ...
        room.play_user(speech_16k, gain=0.5)

A null sink has no clock of its own that keeps a client at real time: with no reader at
low latency it pulls a PortAudio stream at 0.1-0.9x (the loopback's 60 ms do not
suffice), so the room keeps `parec` reading the speaker's monitor every 20 ms, the way
a sound card's DAC would pull it.

PortAudio lists PulseAudio's devices only if the server is reachable when it initialises,
so entering the room points this process at the daemon and re-initialises PortAudio
(no audio stream may be open across the `with` boundary); leaving it stops the daemon we
started, by its pid, and re-initialises PortAudio again. A child process gets `room.env`.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

TOOLS = ("pulseaudio", "pactl", "paplay", "parec")
SPEAKER_RATE_HZ = 24_000
ROOM_RATE_HZ = 16_000


def room_available() -> bool:
    """Whether this machine can build the room (PulseAudio and its tools installed)."""
    return all(shutil.which(tool) for tool in TOOLS)


@dataclass
class VirtualRoom:
    runtime_dir: Path
    pid: int
    env: dict[str, str]
    loopback_input: int  # the loopback's sink input on `room` (its volume is the echo gain)
    delay_ms: float

    def play_user(self, samples: np.ndarray, rate_hz: int = ROOM_RATE_HZ, gain: float = 1.0) -> subprocess.Popen:
        """Start playing the user's speech into the room; wait on the returned process."""
        path = Path(tempfile.mkstemp(suffix=".wav", dir=self.runtime_dir)[1])
        sf.write(path, np.clip(np.asarray(samples, dtype=np.float32) * gain, -1.0, 1.0), rate_hz, subtype="PCM_16")
        return subprocess.Popen(
            ["paplay", "--device=room", "--latency-msec=20", str(path)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def set_echo_gain(self, gain: float) -> None:
        """Scale the echo (the loopback's volume; 1.0 is the level the speaker played)."""
        volume = str(max(0, round(gain * 65536)))
        self._pactl("set-sink-input-volume", str(self.loopback_input), volume)

    def _pactl(self, *args: str) -> str:
        done = subprocess.run(["pactl", *args], env=self.env, check=True, timeout=10, capture_output=True, text=True)
        return done.stdout


@contextlib.contextmanager
def virtual_room(delay_ms: float = 60.0, echo_gain: float = 1.0) -> Iterator[VirtualRoom]:
    """Start the room's PulseAudio, point this process (and PortAudio) at it, stop it after."""
    runtime_dir = Path(tempfile.mkdtemp(prefix="sisyphus-room-"))
    runtime_dir.chmod(0o700)
    env = dict(os.environ)
    env.update(XDG_RUNTIME_DIR=str(runtime_dir), PULSE_SERVER=f"unix:{runtime_dir}/pulse/native")
    saved = {key: os.environ.get(key) for key in ("XDG_RUNTIME_DIR", "PULSE_SERVER")}
    pid = None
    clock: subprocess.Popen | None = None
    try:
        # The daemon writes its cookie and state under $HOME: keep them in the temporary folder.
        pid = _start_daemon({**env, "HOME": str(runtime_dir)}, runtime_dir)
        room = VirtualRoom(runtime_dir, pid, env, -1, delay_ms)
        module = room._pactl(
            "load-module", "module-loopback", "source=spk.monitor", "sink=room", f"latency_msec={int(delay_ms)}"
        ).strip()
        for command in (("set-default-sink", "spk"), ("set-default-source", "room.monitor")):
            room._pactl(*command)
        room.loopback_input = _sink_input_of(room._pactl("list", "sink-inputs"), module)
        room.set_echo_gain(echo_gain)
        clock = subprocess.Popen(
            ["parec", "-d", "spk.monitor", "--latency-msec=20", "--raw", "--format=s16le", "--channels=1"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.environ.update({key: env[key] for key in saved})
        _reinit_portaudio()
        yield room
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if clock is not None:
            clock.terminate()
            clock.wait(timeout=10)
        if pid is not None:
            _stop_daemon(pid)
        _reinit_portaudio()
        shutil.rmtree(runtime_dir, ignore_errors=True)


def _start_daemon(env: dict[str, str], runtime_dir: Path) -> int:
    args = [
        "pulseaudio", "-D", "--exit-idle-time=-1", "--system=false", "-n", "--log-level=error",
        "--load=module-native-protocol-unix auth-anonymous=1",
        f"--load=module-null-sink sink_name=spk rate={SPEAKER_RATE_HZ}",
        f"--load=module-null-sink sink_name=room rate={ROOM_RATE_HZ} channels=1",
        "--load=module-always-sink",
    ]  # fmt: skip
    subprocess.run(args, env=env, check=True, timeout=30, capture_output=True)
    return int((runtime_dir / "pulse" / "pid").read_text().split()[0])


def _sink_input_of(listing: str, module: str) -> int:
    """The sink input a module owns, from `pactl list sink-inputs` ("Sink Input #N" ... "Owner Module: M")."""
    current = None
    for line in listing.splitlines():
        line = line.strip()
        if line.startswith("Sink Input #"):
            current = int(line.removeprefix("Sink Input #"))
        elif line == f"Owner Module: {module}" and current is not None:
            return current
    raise RuntimeError(f"the loopback (module {module}) has no sink input")


def _reinit_portaudio() -> None:
    """Make an already imported sounddevice see the current sound server."""
    sd = sys.modules.get("sounddevice")
    if sd is not None:
        sd._terminate()
        sd._initialize()


def _stop_daemon(pid: int) -> None:
    """SIGTERM the daemon we started (by pid) and wait for it to exit; SIGKILL if it will not."""
    try:
        pidfd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError, AttributeError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
        if not select.select([pidfd], [], [], 10.0)[0]:
            os.kill(pid, signal.SIGKILL)
            select.select([pidfd], [], [], 5.0)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)
