"""What Sisyphus adds on top of remote ASR/TTS servers, measured against the stand-ins on 127.0.0.1.

Three figures, each against bench/speech_server.py (the stand-in vLLM / vLLM-Omni, which
stamps the moment it writes the first audio byte and the moment it sees the client go):

1. TTS first audio beyond the server's first byte: the server holds its first byte back
   50 ms (so the client is waiting in recv, as with a real server), then the client's
   first chunk is stamped (a) where the engine yields it on the TTS thread and (b) where
   the turn controller receives it on the event loop, through the same executor hop
   (`run_in_executor(_next_chunk)`) it uses before `sink.write`. Raw PCM and SSE.
   Target: ≤ 5 ms.
2. Barge-in: a phrase streams in real time while the TTS thread waits on the network;
   `cancel` is set as the controller sets it, and the server stamps the client's hang-up
   (its FIN). Also when the blocked worker thread returns. Target: within one output
   block (audio.output_block_ms, 20 ms).
3. Light start: `sisyphus talk --text` with ASR and TTS remote, time from spawn to the
   "ready" line, the process's CPU time by then and by its exit after /quit (which
   includes the LLM client's import, done after ready), and its peak RSS.
   Target: ≤ 2 s and ≤ 500 MB. Wall time depends on the machine's load; CPU time less so.

    python benchmarks/remote_loopback.py --repeats 50 --json benchmarks/results/remote.json
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sisyphus.agent.controller import _next_chunk  # noqa: E402 - the controller's own TTS step
from sisyphus.bench.llm_server import Behavior, OpenAITestServer  # noqa: E402
from sisyphus.bench.speech_server import SpeechBehavior, SpeechTestServer  # noqa: E402
from sisyphus.runtime.remote import Endpoint  # noqa: E402
from sisyphus.tts.remote import RemoteSynthesizer  # noqa: E402


class ChildServer:
    """A stand-in server in its own process, as a real server is (no shared GIL with the client).

    perf_counter is CLOCK_MONOTONIC on Linux, one clock for every process, so the child's
    stamps and the client's compare directly.
    """

    def __init__(self, kind: str, behavior: SpeechBehavior) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(kind, behavior, child), daemon=True)
        self._process.start()
        self.base_url, self.model = self._conn.recv()

    def records(self) -> list[dict[str, float | None]]:
        self._conn.send("records")
        return self._conn.recv()

    def close(self) -> None:
        self._conn.send("close")
        self._process.join(10)

    def __enter__(self) -> ChildServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve(kind: str, behavior: SpeechBehavior, conn: object) -> None:
    with SpeechTestServer(kind, default=behavior) as server:
        conn.send((server.base_url, server.model))  # type: ignore[attr-defined]
        while (command := conn.recv()) != "close":  # type: ignore[attr-defined]
            for record in server.work_requests():
                record.finished.wait(5.0)
            conn.send([{"first_audio_s": r.first_audio_s, "closed_s": r.closed_s, "bytes_sent": r.bytes_sent}
                       for r in server.work_requests()])  # type: ignore[attr-defined]


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "p90": ordered[int(0.9 * (len(ordered) - 1))],
            "max": ordered[-1], "n": len(ordered)}


def first_audio(stream_format: str, repeats: int) -> dict[str, list[float]]:
    """ms from the server's first audio byte to the first chunk: on the TTS thread, on the loop."""
    engine_ms, loop_ms = [], []
    with ChildServer("custom", SpeechBehavior(first_byte_delay_s=0.05, audio_s=0.5)) as server:
        tts = RemoteSynthesizer(Endpoint("tts_custom", server.base_url, server.model, 5.0, 0),
                                stream_format=stream_format)
        tts.warmup()
        pool = ThreadPoolExecutor(max_workers=1)

        async def one() -> None:
            loop = asyncio.get_running_loop()
            chunks = tts.stream("Hello there, how are you?", "vivian", cancel=threading.Event())
            stamps: list[float] = []

            def step() -> object:
                chunk = _next_chunk(chunks)
                stamps.append(time.perf_counter())
                return chunk

            await loop.run_in_executor(pool, step)
            on_loop = time.perf_counter()
            await loop.run_in_executor(pool, lambda: [None for _ in chunks])
            sent = server.records()[-1]["first_audio_s"]
            engine_ms.append((stamps[0] - sent) * 1000)
            loop_ms.append((on_loop - sent) * 1000)

        for _ in range(repeats + 3):
            asyncio.run(one())
        pool.shutdown()
        tts.close()
    return {"engine_ms": engine_ms[3:], "session_loop_ms": loop_ms[3:]}


def barge_in(repeats: int) -> dict[str, list[float]]:
    """ms from cancel.set() to the server seeing the hang-up, and to the blocked worker returning."""
    closed_ms, returned_ms = [], []
    with ChildServer("custom", SpeechBehavior(audio_s=20.0, chunk_delay_s=0.025)) as server:
        tts = RemoteSynthesizer(Endpoint("tts_custom", server.base_url, server.model, 5.0, 0))
        tts.warmup()
        for i in range(repeats):
            cancel = threading.Event()
            chunks = tts.stream("A long story.", "vivian", cancel=cancel)
            next(chunks)
            returned = threading.Event()
            worker = threading.Thread(target=lambda: ([None for _ in chunks], returned.set()), daemon=True)
            worker.start()
            time.sleep(0.1 + 0.013 * (i % 7))  # land anywhere between two network pieces
            set_at = time.perf_counter()
            cancel.set()
            returned.wait(5.0)
            back_at = time.perf_counter()
            closed_ms.append((server.records()[-1]["closed_s"] - set_at) * 1000)
            returned_ms.append((back_at - set_at) * 1000)
        tts.close()
    return {"server_saw_close_ms": closed_ms, "worker_returned_ms": returned_ms}


def light_start(repeats: int) -> dict[str, list[float]]:
    """`talk --text` with every model remote: seconds to ready, peak RSS MB, CPU seconds."""
    ready_s, rss_mb, cpu_s, cpu_at_ready = [], [], [], []
    with (SpeechTestServer("asr") as asr, SpeechTestServer("custom") as custom, SpeechTestServer("base") as base,
          OpenAITestServer(models=("m",), default=Behavior(reply="Hi.")) as llm, tempfile.TemporaryDirectory() as tmp):
        env = dict(os.environ, PYTHONPATH=str(REPO), SISYPHUS_ASR_URL=asr.base_url,
                   SISYPHUS_TTS_CUSTOM_URL=custom.base_url, SISYPHUS_TTS_BASE_URL=base.base_url,
                   OPENAI_BASE_URL=llm.base_url, SISYPHUS_LLM_MODEL="m", OPENAI_API_KEY="k",
                   SISYPHUS_TRANSCRIPT_DIR=tmp, SISYPHUS_VOICES_DIR=tmp, HF_HUB_OFFLINE="1")
        env.pop("SISYPHUS_CONFIG", None)
        for _ in range(repeats + 1):
            started = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "sisyphus.cli", "talk", "--text", "--plain", "--output",
                                     f"{tmp}/out.wav"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp)
            assert proc.stdin is not None and proc.stdout is not None
            ready = None
            for line in proc.stdout:
                if "ready in" in line:
                    ready = time.perf_counter() - started
                    times = psutil.Process(proc.pid).cpu_times()
                    cpu_at_ready.append(times.user + times.system)
                    break
            proc.stdin.write("/quit\n")
            proc.stdin.close()
            proc.stdout.read()
            _, _, usage = os.wait4(proc.pid, 0)
            if ready is None:
                raise RuntimeError("talk never said it was ready")
            ready_s.append(ready)
            rss_mb.append(usage.ru_maxrss / 1024)
            cpu_s.append(usage.ru_utime + usage.ru_stime)
    return {"ready_s": ready_s[1:], "cpu_at_ready_s": cpu_at_ready[1:], "peak_rss_mb": rss_mb[1:],
            "cpu_to_exit_s": cpu_s[1:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--starts", type=int, default=5, help="talk start-ups to time")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = {
        "first_audio_raw": first_audio("audio", args.repeats),
        "first_audio_sse": first_audio("sse", args.repeats),
        "barge_in": barge_in(max(5, args.repeats // 2)),
        "light_start": light_start(args.starts),
    }
    for group, figures in results.items():
        for name, values in figures.items():
            s = summary(values)
            print(f"{group:16} {name:20} median {s['median']:8.3f}  p90 {s['p90']:8.3f}  "
                  f"max {s['max']:8.3f}  n {s['n']}")
    if args.json:
        payload = {"figures": {g: {n: {"values": v, **summary(v)} for n, v in f.items()} for g, f in results.items()},
                   "environment": {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                                   "platform": platform.platform(), "python": sys.version.split()[0],
                                   "cpu_count": os.cpu_count(), "load_average": os.getloadavg()}}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
