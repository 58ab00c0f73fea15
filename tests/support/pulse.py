"""Virtual PulseAudio devices for tests: a null sink `spk` and a fifo-fed source `mic`.

    with pulse_devices() as pa:
        pa.mic.play(speech_16k)               # what the "user says", paced in real time
        with pa.record_speaker() as rec: ...  # what was played, from spk.monitor

How this reaches PortAudio: sounddevice initialises PortAudio when it is imported, and
PortAudio's ALSA backend lists the `pulse`/`default` devices (through libasound2-plugins)
only if the sound server is reachable at that moment. `pulse_devices()` therefore sets
XDG_RUNTIME_DIR and PULSE_SERVER in os.environ and then re-initialises PortAudio in this
process (`sd._terminate(); sd._initialize()`), and does the same again after restoring the
environment on exit. That is safe only while no stream is open, so open streams inside
the `with` block and close them before it ends. Code under test imports sounddevice
lazily (sisyphus.audio.devices.sounddevice_module), so importing sisyphus first is fine.
An end-to-end `talk` run in a subprocess simply gets `pa.env` as its environment.

The pipe source delivers only what is written into its fifo, so a writer thread keeps
writing (silence between utterances) paced in real time; otherwise a recording stalls.
The source reads the fifo only while something records, so chunks written before the
microphone stream is open are dropped: play an utterance after the stream is live.

Keep `record_speaker()` running while anything plays: on these VMs a null sink with no
low-latency reader pulls a PortAudio stream at 0.1-0.9x real time; with parec reading
spk.monitor at 20 ms it runs at 1.0x. Open SpeakerSink with latency=0.1 in tests (the
"low" default makes ALSA print underrun warnings here). PortAudio/ALSA write their own
diagnostics to stderr ("ALSA lib ...", "Expression ... failed"); they are not failures.

End to end (`sisyphus talk` in a child process, the most faithful setup):

    with pulse_devices() as pa, pa.record_speaker() as rec:
        child = subprocess.Popen([sys.executable, "-m", "sisyphus", "talk", ...], env=pa.env)
        # wait until the child's microphone is open (its "listening" line), then:
        pa.mic.play(utterance_16k)
        rec.wait_samples(n); reply = rec.samples()

The child imports sounddevice with the environment already set, so it needs nothing
else; PortAudio's "default" device is then PulseAudio's defaults, spk and mic.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MIC_RATE_HZ = 16_000


def pulse_available() -> bool:
    """Whether this machine can run the virtual devices (for pytest skipif)."""
    return all(shutil.which(tool) for tool in ("pulseaudio", "pactl", "parec"))


def reinit_portaudio() -> None:
    """Make an already imported sounddevice see the current sound server."""
    sd = sys.modules.get("sounddevice")
    if sd is not None:
        sd._terminate()
        sd._initialize()


@dataclass
class Playing:
    """An utterance queued into the fifo; times are time.monotonic() of the writer."""

    samples: np.ndarray  # int16
    started_s: float | None = None
    done: threading.Event = field(default_factory=threading.Event)


class FifoMic:
    """Feeds the pipe source in real time: queued utterances, silence in between."""

    def __init__(self, fifo: Path, rate_hz: int = MIC_RATE_HZ, chunk_ms: int = 20) -> None:
        self.rate_hz = rate_hz
        self.chunk_samples = rate_hz * chunk_ms // 1000
        self._fifo = fifo
        self.dropped_chunks = 0
        self._queue: queue.Queue[Playing] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fifo-mic", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def play(self, samples: np.ndarray) -> Playing:
        """Queue float [-1, 1] or int16 samples at the fifo's rate."""
        pcm = np.asarray(samples)
        if pcm.dtype != np.int16:
            pcm = np.round(np.clip(pcm, -1.0, 1.0) * 32767).astype(np.int16)
        item = Playing(pcm.reshape(-1))
        self._queue.put(item)
        return item

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        # module-pipe-source holds the fifo open for reading, but reads it only while
        # something records; a non-blocking writer drops chunks nobody hears (as a real
        # microphone would) instead of blocking on a full pipe. Each chunk is below
        # PIPE_BUF, so a write is all or nothing.
        fd = os.open(self._fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            self._write_loop(fd)
        finally:
            os.close(fd)

    def _write_loop(self, fd: int) -> None:
        chunk_s = self.chunk_samples / self.rate_hz
        silence = np.zeros(self.chunk_samples, dtype="<i2")
        current: Playing | None = None
        offset = 0
        t0 = time.monotonic()
        index = 0
        while not self._stop.is_set():
            if current is None:
                with contextlib.suppress(queue.Empty):
                    current, offset = self._queue.get_nowait(), 0
            chunk = silence
            if current is not None:
                if current.started_s is None:
                    current.started_s = time.monotonic()
                piece = current.samples[offset : offset + self.chunk_samples]
                chunk = np.concatenate([piece, silence[: self.chunk_samples - piece.size]]).astype("<i2")
                offset += self.chunk_samples
                if offset >= current.samples.size:
                    current.done.set()
                    current = None
            try:
                os.write(fd, chunk.tobytes())
            except BlockingIOError:
                self.dropped_chunks += 1
            except BrokenPipeError:
                return
            index += 1
            # This thread is the device's clock: pacing, not waiting for a result.
            delay_s = t0 + (index - 2) * chunk_s - time.monotonic()  # stay two chunks ahead
            if delay_s > 0:
                self._stop.wait(delay_s)


class MonitorRecorder:
    """Records what the null sink played (spk.monitor) with parec, as float32 mono."""

    def __init__(self, env: dict[str, str], rate_hz: int) -> None:
        self.rate_hz = rate_hz
        self._env = env
        self._data = bytearray()
        self._cond = threading.Condition()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            ["parec", "-d", "spk.monitor", "--format=float32le", f"--rate={self.rate_hz}",
             "--channels=1", "--raw", "--latency-msec=20"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=self._env,
        )  # fmt: skip
        self._thread = threading.Thread(target=self._read, name="parec-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while True:
            chunk = self._proc.stdout.read1(4096)
            if not chunk:
                break
            with self._cond:
                self._data.extend(chunk)
                self._cond.notify_all()

    def wait_samples(self, count: int, timeout_s: float = 20.0) -> bool:
        """Wait until at least `count` samples were recorded."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._data) // 4 >= count, timeout=timeout_s)

    @property
    def recorded(self) -> int:
        with self._cond:
            return len(self._data) // 4

    def samples(self) -> np.ndarray:
        with self._cond:
            usable = len(self._data) // 4 * 4
            return np.frombuffer(bytes(self._data[:usable]), dtype="<f4").astype(np.float32)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)


@dataclass
class PulseDevices:
    runtime_dir: Path
    pid: int
    env: dict[str, str]
    mic: FifoMic

    @contextlib.contextmanager
    def record_speaker(self, rate_hz: int = 24_000) -> Iterator[MonitorRecorder]:
        recorder = MonitorRecorder(self.env, rate_hz)
        recorder.start()
        try:
            yield recorder
        finally:
            recorder.stop()


@contextlib.contextmanager
def pulse_devices(mic_rate_hz: int = MIC_RATE_HZ) -> Iterator[PulseDevices]:
    """Start a private PulseAudio, point this process (and PortAudio) at it, stop it after."""
    runtime_dir = Path(tempfile.mkdtemp(prefix="sisyphus-pulse-"))
    runtime_dir.chmod(0o700)
    env = dict(os.environ)
    env.update(XDG_RUNTIME_DIR=str(runtime_dir), PULSE_SERVER=f"unix:{runtime_dir}/pulse/native")
    # The daemon writes its cookie and state under $HOME: keep them in the temporary folder.
    pid = _start_daemon(runtime_dir, {**env, "HOME": str(runtime_dir)}, mic_rate_hz)
    saved = {key: os.environ.get(key) for key in ("XDG_RUNTIME_DIR", "PULSE_SERVER")}
    mic = FifoMic(runtime_dir / "mic.fifo", mic_rate_hz)
    try:
        for key in saved:
            os.environ[key] = env[key]
        reinit_portaudio()
        mic.start()
        yield PulseDevices(runtime_dir, pid, env, mic)
    finally:
        mic.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _stop_daemon(pid)
        reinit_portaudio()
        shutil.rmtree(runtime_dir, ignore_errors=True)


def _start_daemon(runtime_dir: Path, env: dict[str, str], mic_rate_hz: int) -> int:
    fifo = runtime_dir / "mic.fifo"
    args = [
        "pulseaudio", "-D", "--exit-idle-time=-1", "--system=false", "-n", "--log-level=error",
        "--load=module-native-protocol-unix auth-anonymous=1",
        "--load=module-null-sink sink_name=spk",
        f"--load=module-pipe-source source_name=mic file={fifo} format=s16le rate={mic_rate_hz} channels=1",
        "--load=module-always-sink",
    ]  # fmt: skip
    subprocess.run(args, env=env, check=True, timeout=30, capture_output=True)
    pid = int((runtime_dir / "pulse" / "pid").read_text().split()[0])
    for command in (["pactl", "set-default-sink", "spk"], ["pactl", "set-default-source", "mic"]):
        subprocess.run(command, env=env, check=True, timeout=10, capture_output=True)
    return pid


def _stop_daemon(pid: int) -> None:
    """SIGTERM the daemon we started (by pid) and wait for it to exit."""
    try:
        pidfd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError, AttributeError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
        ready, _, _ = select.select([pidfd], [], [], 10.0)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            select.select([pidfd], [], [], 5.0)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)
