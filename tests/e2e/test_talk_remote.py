"""`sisyphus talk --input/--output` with ASR and TTS on the stand-in vLLM / vLLM-Omni servers.

The real CLI runs in a subprocess against strict stand-ins on 127.0.0.1 (and the stand-in
LLM): everything remote (and then no torch or transformers import at all), the two mixed
set-ups with a tiny local model, failures of each server mid-session, and a barge-in that
must close the TTS server's HTTP stream.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from sisyphus.bench.llm_server import Behavior, OpenAITestServer
from sisyphus.bench.speech_server import CLIENT_CLOSED, SpeechBehavior, SpeechTestServer
from tests.e2e.harness import REPO, of_type, read_wav, sound_spans, talk_env, transcript, write_config
from tests.support.speech import espeak, timeline

pytestmark = pytest.mark.slow

# Turns that end on silence alone and no replies prepared at pauses: each utterance is one
# request to each server, so scripted faults land on the turn they are meant for.
PLAIN_TURNS = {"vad__turn_model": "none", "vad__preempt_silence_ms": None}
PARIS = "What time is it in Paris?"
THANKS = "Thank you very much."


@pytest.fixture()
def servers():
    with (SpeechTestServer("asr") as asr, SpeechTestServer("custom") as custom, SpeechTestServer("base") as base,
          OpenAITestServer(models=("test-model",)) as llm):
        yield {"asr": asr, "tts_custom": custom, "tts_base": base, "llm": llm}


def config_for(tmp_path, servers, *, remote=("asr", "tts_custom", "tts_base"), asr=None, tts_custom=None, **extra):
    """models.yaml with the given keys remote; the others at tiny local folders (or nowhere)."""
    urls = {f"{key}_url": servers[key].base_url for key in remote}
    return write_config(
        tmp_path, asr=asr or servers["asr"].model, tts_custom=tts_custom or servers["tts_custom"].model,
        tts_base=servers["tts_base"].model, llm_url=servers["llm"].base_url,
        remote={"max_retries": 0, "timeout_s": 5, **urls}, voice__instruct="Speak calmly.", **extra,
    )


def talk(config, tmp_path, *args: str, importtime: bool = False) -> subprocess.CompletedProcess:
    flags = ["-X", "importtime"] if importtime else []
    command = [sys.executable, *flags, "-m", "sisyphus.cli", "talk", "--config", str(config), "--plain",
               "--input", str(tmp_path / "in.wav"), "--output", str(tmp_path / "out.wav"), *args]
    return subprocess.run(command, env=talk_env(tmp_path), cwd=REPO, capture_output=True, text=True, timeout=240,
                          stdin=subprocess.DEVNULL)


def two_questions(tmp_path):
    audio, segments = timeline([0.6, espeak(PARIS), 5.0, espeak(THANKS), 0.5])
    sf.write(tmp_path / "in.wav", audio, 16000)
    return segments


def imported(stderr: str) -> set[str]:
    return {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def energy(samples: np.ndarray) -> float:
    return float(np.sum(np.square(samples, dtype=np.float64)))


def test_everything_remote_talks_end_to_end_without_importing_torch(tmp_path, servers):
    first, second = two_questions(tmp_path)
    servers["asr"].script(SpeechBehavior(text=PARIS), SpeechBehavior(text=THANKS))
    servers["llm"].script(Behavior(reply="It is noon in Paris. Have a nice day."), Behavior(reply="You are welcome."))

    result = talk(config_for(tmp_path, servers), tmp_path, importtime=True)

    assert result.returncode == 0, result.stderr[-3000:]
    modules = imported(result.stderr)
    assert "sisyphus.tts.remote" in modules and "onnxruntime" in modules
    assert not modules & {"torch", "transformers", "silero_vad", "sisyphus.tts.qwen3", "sisyphus.asr.glm"}
    records = transcript(tmp_path)
    assert [u["text"] for u in of_type(records, "user")] == [PARIS, THANKS]
    assert [r["text"] for r in of_type(records, "assistant")] == ["It is noon in Paris. Have a nice day.",
                                                                  "You are welcome."]
    # ASR: one 16 kHz mono WAV per utterance, as long as the speech plus pre-roll and tail.
    uploads = servers["asr"].work_requests()
    assert [r.fields for r in uploads] == [{"model": "zai-org/GLM-ASR-Nano-2512", "language": "en"}] * 2
    for record, segment in zip(uploads, (first, second)):
        assert (record.upload.rate_hz, record.upload.channels) == (16000, 1)
        assert 0 <= record.upload.seconds - (segment.voiced_end_s - segment.voiced_start_s) <= 0.7
    # TTS: one request per phrase, with the session's voice, language, style and chunking.
    speech = servers["tts_custom"].work_requests()
    assert [r.body["input"] for r in speech] == ["It is noon in Paris.", "Have a nice day.", "You are welcome."]
    for record in speech:
        assert {k: v for k, v in record.body.items() if k != "input"} == {
            "model": "Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice", "voice": "vivian", "language": "English",
            "instructions": "Speak calmly.", "response_format": "pcm", "stream_format": "audio",
            "initial_codec_chunk_frames": 2, "max_new_tokens": 10, "seed": 1}
    assert servers["tts_base"].work_requests() == []
    # Every streamed sample was played, after the speech it answers.
    played, rate = read_wav(tmp_path / "out.wav")
    sent = np.concatenate([np.frombuffer(r.pcm, "<i2") for r in speech]).astype(np.float32) / 32768
    assert rate == 24000 and energy(played) == pytest.approx(energy(sent), rel=1e-3)
    spans = sound_spans(played, rate, gap_s=1.0)
    assert len(spans) == 2 and first.voiced_end_s < spans[0][0] < second.voiced_start_s < spans[1][0]


@pytest.mark.parametrize("local", ["asr", "tts_custom"])
def test_mixed_set_ups_run_one_model_here_and_the_other_on_its_server(
    tmp_path, servers, local, tiny_glmasr_folder, tiny_tts_custom_folder
):
    two_questions(tmp_path)
    servers["asr"].script(SpeechBehavior(text=PARIS), SpeechBehavior(text=THANKS))
    servers["llm"].script(Behavior(reply="It is noon."), Behavior(reply="You are welcome."))
    remote = ("tts_custom", "tts_base") if local == "asr" else ("asr", "tts_base")
    config = config_for(tmp_path, servers, remote=remote, asr=tiny_glmasr_folder if local == "asr" else None,
                        tts_custom=tiny_tts_custom_folder if local == "tts_custom" else None)

    result = talk(config, tmp_path)

    assert result.returncode == 0, result.stderr[-3000:]
    records = transcript(tmp_path)
    assert len(of_type(records, "user")) == 2
    # The whole reply; a local random-weight TTS never stops by itself, so the length guard
    # may cut a phrase, and `text` then holds what was let through of it.
    assert [r["full_text"] for r in of_type(records, "assistant")] == ["It is noon.", "You are welcome."]
    assert len(servers["asr"].work_requests()) == (0 if local == "asr" else 2)
    assert len(servers["tts_custom"].work_requests()) == (2 if local == "asr" else 0)
    played, rate = read_wav(tmp_path / "out.wav")
    assert len(sound_spans(played, rate, gap_s=1.0)) == 2


def test_each_server_failing_mid_session_is_one_error_line_and_the_session_goes_on(tmp_path, servers):
    audio, _ = timeline([0.5, espeak(PARIS), 4.0, espeak("Tell me a story."), 5.0, espeak(THANKS), 0.5])
    sf.write(tmp_path / "in.wav", audio, 16000)
    servers["asr"].script(SpeechBehavior(status=500), SpeechBehavior(text="Tell me a story."),
                          SpeechBehavior(text=THANKS))
    servers["llm"].script(Behavior(reply="Once upon a time there was a fox."), Behavior(reply="You are welcome."))
    servers["tts_custom"].script(SpeechBehavior(disconnect_after_bytes=6000))

    result = talk(config_for(tmp_path, servers, **PLAIN_TURNS), tmp_path)

    assert result.returncode == 0, result.stderr[-3000:]
    records = transcript(tmp_path)
    errors = [n["text"] for n in of_type(records, "notice") if n["level"] == "error"]
    assert len(errors) == 2, errors
    assert errors[0].startswith(f"ASR server {servers['asr'].base_url} answered HTTP 500: scripted HTTP 500.")
    assert errors[1].startswith(f"TTS server (CustomVoice) {servers['tts_custom'].base_url} broke the connection off")
    assert all("\n" not in e for e in errors)
    assert [u["text"] for u in of_type(records, "user")] == ["Tell me a story.", THANKS]
    assert of_type(records, "assistant")[-1]["text"] == "You are welcome."
    assert of_type(records, "end")[0]["reason"] == "ended"


def test_barge_in_closes_the_remote_tts_stream(tmp_path, servers):
    audio, (_, second) = timeline([0.5, espeak("Tell me everything about the moon."), 3.5,
                                   espeak("Wait, stop, I have another question for you."), 4.0])
    sf.write(tmp_path / "in.wav", audio, 16000)
    servers["asr"].script(SpeechBehavior(text="Tell me everything about the moon."),
                          SpeechBehavior(text="Wait, stop."))
    servers["llm"].script(Behavior(reply="The moon is far away and very old."), Behavior(reply="Sure."))
    # About real time (~600 samples, 25 ms, per piece every 25 ms): 20 s of audio for the first phrase.
    servers["tts_custom"].script(SpeechBehavior(audio_s=20.0, chunk_delay_s=0.025))

    result = talk(config_for(tmp_path, servers, tts__max_seconds_per_phrase=25.0, **PLAIN_TURNS), tmp_path)

    assert result.returncode == 0, result.stderr[-3000:]
    replies = of_type(transcript(tmp_path), "assistant")
    assert replies[0]["interrupted"] is True and replies[1]["text"] == "Sure."
    first = servers["tts_custom"].work_requests()[0]
    assert first.outcome == CLIENT_CLOSED and first.bytes_sent < len(first.pcm) // 2
    played, rate = read_wav(tmp_path / "out.wav")
    spans = sound_spans(played, rate, gap_s=1.0)
    assert spans[0][0] < second.voiced_start_s < spans[0][1] < second.voiced_start_s + 0.5
