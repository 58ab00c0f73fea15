"""`sisyphus talk --input/--output`: the whole pipeline on tiny real models, no audio devices.

Real Silero on espeak-ng speech, the tiny GLM-ASR and Qwen3-TTS checkpoints in the official
layouts, a real OpenAI-style server on 127.0.0.1, and the real CLI in a subprocess.
"""

from __future__ import annotations

import signal
import subprocess

import pytest
import soundfile as sf

from tests.e2e.harness import (
    REPO,
    of_type,
    read_wav,
    run_talk,
    sound_spans,
    talk_command,
    talk_env,
    transcript,
    wait_for_records,
)
from sisyphus.bench.llm_server import Behavior
from tests.support.speech import espeak, timeline

pytestmark = pytest.mark.slow


def test_each_utterance_is_one_turn_and_replies_land_after_it_on_the_same_timeline(tmp_path, server, config):
    audio, (first, second) = timeline(
        [0.6, espeak("What time is it in Paris?"), 6.0, espeak("Thank you very much."), 0.5]
    )
    sf.write(tmp_path / "in.flac", audio, 16000)  # any libsndfile format works
    # Phrases short enough for the 0.8 s length guard (about 15 characters a second).
    server.script(Behavior(reply="It is noon. Bye now."), Behavior(reply="Welcome."))

    result = run_talk(config(), talk_env(tmp_path), "--input", str(tmp_path / "in.flac"), "--output", str(tmp_path / "out.wav"))

    assert result.returncode == 0, result.stderr[-3000:]
    records = transcript(tmp_path)
    users, replies = of_type(records, "user"), of_type(records, "assistant")
    assert [u["turn_id"] for u in users] == [1, 2]
    assert [r["interrupted"] for r in replies] == [False, False]
    assert [r["text"] for r in replies] == ["It is noon. Bye now.", "Welcome."]
    assert len(of_type(records, "latency")) == 2
    assert of_type(records, "end")[0]["reason"] == "ended"

    requests = server.chat_requests
    assert len(requests) == 2
    assert requests[1].messages[-2] == {"role": "assistant", "content": "It is noon. Bye now."}
    assert requests[1].messages[-3]["content"] == users[0]["text"]

    played, rate = read_wav(tmp_path / "out.wav")
    assert rate == 24000
    assert abs(len(played) / rate - len(audio) / 16000) < 3.0  # same timeline, plus the tail
    spans = sound_spans(played, rate, gap_s=1.0)
    assert len(spans) == 2, spans
    assert first.voiced_end_s < spans[0][0] < second.voiced_start_s
    assert second.voiced_end_s < spans[1][0]


def test_barge_in_stops_playback_and_the_history_keeps_only_what_was_heard(tmp_path, server, config):
    audio, (first, second) = timeline(
        [0.5, espeak("Tell me everything about the moon."), 3.5,
         espeak("Wait, stop, I have another question for you."), 4.0]
    )
    sf.write(tmp_path / "in.wav", audio, 16000)
    long_reply = "One two three four five six. Seven eight nine ten eleven twelve. Thirteen fourteen fifteen."
    server.script(Behavior(reply=long_reply), Behavior(reply="Sure, go ahead."))

    # About barge-in: turns end on silence alone (Smart Turn would end a turn at "Wait, stop,").
    result = run_talk(
        config(tts__max_seconds_per_phrase=2.0, vad__turn_model="none", vad__preempt_silence_ms=None),
        talk_env(tmp_path), "--input", str(tmp_path / "in.wav"), "--output", str(tmp_path / "out.wav"),
    )

    assert result.returncode == 0, result.stderr[-3000:]
    records = transcript(tmp_path)
    replies = of_type(records, "assistant")
    assert replies[0]["interrupted"] is True
    assert replies[0]["full_text"] == long_reply
    heard = replies[0]["text"]
    assert len(heard) < len(long_reply) and long_reply.startswith(heard)
    assert replies[1]["interrupted"] is False
    # The second request's history holds only what was heard, marked as cut off.
    assert server.chat_requests[1].messages[-2] == {"role": "assistant", "content": heard + "…"}

    played, rate = read_wav(tmp_path / "out.wav")
    spans = sound_spans(played, rate, gap_s=1.0)
    assert spans[0][0] < second.voiced_start_s, "the first reply should be playing when the user speaks again"
    # Playback stopped once the user started speaking (VAD needs min_speech_ms to decide).
    assert spans[0][1] < second.voiced_start_s + 0.5
    assert all(not (a < second.voiced_end_s and b > second.voiced_start_s + 0.5) for a, b in spans)


def test_ctrl_c_ends_the_session_cleanly_and_keeps_the_transcript(tmp_path, server, config):
    audio, _ = timeline([0.5, espeak("Hello there, can you hear me?"), 30.0])
    sf.write(tmp_path / "in.wav", audio, 16000)
    server.script(Behavior(reply="I hear you."))  # fits the 0.8 s length guard
    env = talk_env(tmp_path)
    proc = subprocess.Popen(
        talk_command(config(), "--input", str(tmp_path / "in.wav"), "--output", str(tmp_path / "out.wav")),
        env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for_records(tmp_path, lambda rs: bool(of_type(rs, "assistant")))
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    records = transcript(tmp_path)
    assert of_type(records, "assistant")[0]["text"] == "I hear you."
    assert of_type(records, "end")[0]["reason"] == "interrupted"
    played, rate = read_wav(tmp_path / "out.wav")  # still a valid WAV after Ctrl-C
    assert rate == 24000 and len(played) > 0
