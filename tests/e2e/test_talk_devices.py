"""`sisyphus talk` through real PortAudio on virtual PulseAudio devices.

The microphone is a PulseAudio pipe source fed with espeak-ng speech in real time; the
speaker is a null sink whose monitor we record. Tiny real models, a real OpenAI-style
server on 127.0.0.1, and the real CLI in a subprocess.
"""

from __future__ import annotations

import signal
import subprocess
import threading

import numpy as np
import pytest

from tests.e2e.harness import REPO, of_type, talk_command, talk_env, transcript, wait_for_records, write_config
from sisyphus.bench.llm_server import Behavior, OpenAITestServer
from tests.support.pulse import pulse_available, pulse_devices
from tests.support.speech import espeak, timeline

pytestmark = [
    pytest.mark.slow,
    pytest.mark.audio,
    pytest.mark.skipif(not pulse_available(), reason="needs pulseaudio, pactl and parec (tests/run.sh installs them)"),
]

RATE_HZ = 24_000


class Talk:
    """The talk subprocess, its output lines, and a wait for the line that says it is ready."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            command, env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if "ready in" in line:
                self.ready.set()

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        return self.proc.returncode, err


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples)))) if len(samples) else 0.0


def test_spoken_turns_reach_the_speaker_and_a_barge_in_silences_it(
    tmp_path, tiny_glmasr_folder, tiny_tts_custom_folder, tiny_tts_base_folder
):
    long_reply = "One two three four five six. Seven eight nine ten eleven twelve. Thirteen fourteen fifteen."
    with OpenAITestServer(models=("test-model",)) as server, pulse_devices() as pa:
        server.script(Behavior(reply="Hello from the speaker."), Behavior(reply=long_reply), Behavior(reply="Sure."))
        # About barge-in: turns end on silence alone (Smart Turn would end a turn at "Stop, stop,", and
        # replies prepared at the commas would take the scripted replies out of order).
        config = write_config(
            tmp_path, asr=tiny_glmasr_folder, tts_custom=tiny_tts_custom_folder, tts_base=tiny_tts_base_folder,
            llm_url=server.base_url, tts__max_seconds_per_phrase=2.0, vad__turn_model="none",
            vad__preempt_silence_ms=None,
            # Headphones: no echo path, so no echo canceller, whose hold-down while it converges
            # would swallow an early barge-in (open speakers: tests/e2e/test_open_speakers.py).
            audio__echo_cancellation="off",
        )
        talk = Talk(talk_command(config), talk_env(tmp_path, pa.env))
        try:
            assert talk.ready.wait(timeout=180), "".join(talk.lines)[-2000:]
            with pa.record_speaker(RATE_HZ) as speaker:
                # Turn 1: a short reply that plays to its end.
                first, _ = timeline([0.5, espeak("Good morning, are you there?"), 0.3])
                pa.mic.play(first)
                records = wait_for_records(tmp_path, lambda rs: len(of_type(rs, "assistant")) == 1)
                reply = of_type(records, "assistant")[0]
                assert (reply["text"], reply["interrupted"]) == ("Hello from the speaker.", False)
                heard_first = speaker.samples()
                assert rms(heard_first) > 1e-3, "the reply never reached the speaker"

                # Turn 2: a long reply, interrupted by turn 3 while it plays.
                pa.mic.play(timeline([0.3, espeak("Please count slowly for me."), 0.3])[0])
                wait_for_records(tmp_path, lambda rs: len(of_type(rs, "latency")) == 1 and len(of_type(rs, "user")) == 2)
                start = speaker.recorded
                assert speaker.wait_samples(start + RATE_HZ // 2, timeout_s=60)
                while rms(speaker.samples()[-RATE_HZ // 10 :]) < 1e-3:  # reply 2 is audible now
                    assert speaker.wait_samples(speaker.recorded + RATE_HZ // 50, timeout_s=30)
                interrupt = pa.mic.play(espeak("Stop, stop, I have another question for you now."))
                assert interrupt.done.wait(timeout=30)
                during = speaker.recorded
                records = wait_for_records(tmp_path, lambda rs: len(of_type(rs, "assistant")) == 3)
        finally:
            code, err = talk.stop()

    replies = of_type(records, "assistant")
    assert replies[1]["interrupted"] is True
    assert replies[1]["full_text"] == long_reply
    assert len(replies[1]["text"]) < len(long_reply)
    assert replies[2]["text"] == "Sure."
    assert server.chat_requests[2].messages[-2] == {"role": "assistant", "content": replies[1]["text"] + "…"}
    # While the user spoke over it, the speaker went quiet: the last second of the
    # interruption (speech-start detection + one block is far less) holds no reply audio.
    recorded = speaker.samples()
    assert rms(recorded[during - RATE_HZ : during]) < 1e-3
    assert code == 0, err[-3000:]
    assert of_type(transcript(tmp_path), "end")[0]["reason"] == "interrupted"
