"""A long phrase with a short length guard, as a user meets it (issue 9, item 8).

A cloned voice feeds its text after the audio, one token per frame. With
`tts.max_seconds_per_phrase: 1` and a 40-word sentence that text is longer than the
prompt and the guard's frames together, which crashed `voices say` with a traceback and
left `talk` without its reply. Both must speak the phrase up to the guard.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from sisyphus.bench.llm_server import Behavior, OpenAITestServer
from sisyphus.cli import app
from sisyphus.llm.chunker import PhraseChunker
from tests.e2e.harness import of_type, read_wav, run_talk, sound_spans, talk_env, transcript, write_config
from tests.support.speech import espeak, espeak_wav, timeline

pytestmark = pytest.mark.slow

LONG = (
    "I would like to tell you a rather long story about a small town by the sea where the "
    "fishermen went out every morning before sunrise and came back at noon with their boats "
    "full of silver fish while the children played on the sand."
)
GUARD_SAMPLES = 12 * 1920  # 1 s guard = 12 codec frames of 1920 samples at 24 kHz


@pytest.fixture()
def cloned(tmp_path, tiny_glmasr_folder, tiny_tts_custom_folder, tiny_tts_base_folder):
    """A config with a 1 s guard whose default voice is 'fox', cloned from espeak-ng speech."""

    def make(llm_url: str, transcript_text: str | None):
        config = write_config(
            tmp_path, asr=tiny_glmasr_folder, tts_custom=tiny_tts_custom_folder, tts_base=tiny_tts_base_folder,
            llm_url=llm_url, tts__max_seconds_per_phrase=1, voice__default="fox",
        )  # fmt: skip
        reference = tmp_path / "fox.wav"
        espeak_wav("The quick brown fox jumps over the lazy dog, then it runs back home to sleep.", reference, 24000)
        args = ["voices", "clone", "fox", "--audio", str(reference), "--config", str(config)]
        if transcript_text is not None:
            args += ["--text", transcript_text]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        return config

    return make


@pytest.mark.parametrize("transcript_text", [None, "The quick brown fox."], ids=["x-vector", "icl"])
def test_voices_say_speaks_a_long_phrase_up_to_the_guard(tmp_path, cloned, transcript_text):
    config = cloned("http://127.0.0.1:9/v1", transcript_text)
    out = tmp_path / "long.wav"
    result = CliRunner().invoke(app, ["voices", "say", "fox", LONG, "--output", str(out), "--config", str(config)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 0, result.output
    samples, rate = sf.read(out, dtype="float32")
    assert rate == 24000 and 0 < samples.size <= GUARD_SAMPLES
    assert result.stdout.startswith(f"wrote {samples.size / 24000:.2f} s of 'fox' to ")


def test_talk_speaks_a_long_reply_in_a_cloned_voice(tmp_path, cloned):
    with OpenAITestServer(models=("test-model",)) as server:
        config = cloned(server.base_url, None)
        audio, (question,) = timeline([0.5, espeak("Tell me a story please."), 5.0])
        sf.write(tmp_path / "in.wav", audio, 16000)
        server.script(Behavior(reply=LONG))
        result = run_talk(config, talk_env(tmp_path), "--voice", "fox", "--input", str(tmp_path / "in.wav"),
                          "--output", str(tmp_path / "out.wav"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    records = transcript(tmp_path)
    (reply,) = of_type(records, "assistant")
    assert (reply["full_text"], reply["interrupted"]) == (LONG, False)
    # The transcript's latency line holds audible first audio beside first audio; tiny random
    # models are loud from their first sample, so the two agree.
    (latency,) = of_type(records, "latency")
    assert latency["tts_audible_ms"] == pytest.approx(latency["tts_first_audio_ms"], abs=1e-6)
    assert latency["tts_first_audio_ms"] > 0
    # The chunker cuts this run-on sentence once (at 200 characters): each phrase stops at the guard.
    chunker = PhraseChunker()
    phrases = chunker.push(LONG) + chunker.flush()
    assert len(phrases) == 2
    # The transcript keeps what the guard let through of each phrase, marked as cut
    # (issue 10, item 14): a word-prefix of each, about 15 characters a second.
    said = reply["text"].split("… ")
    assert len(said) == 2 and said[1].endswith("…"), reply["text"]
    for part, phrase in zip([said[0], said[1].removesuffix("…")], phrases):
        assert part and phrase.startswith(part + " ") and len(part) <= 20, (part, phrase)
    played, rate = read_wav(tmp_path / "out.wav")
    spans = sound_spans(played, rate, gap_s=1.0)
    assert len(spans) == 1 and question.voiced_end_s < spans[0][0]
    # Sound in 10 ms blocks (a gap between the two phrases, if any, does not count).
    block = rate // 100
    loud_s = float((np.abs(played[: len(played) // block * block]).reshape(-1, block).max(axis=1) > 1e-4).sum()) / 100
    assert 0.5 * GUARD_SAMPLES / rate < loud_s <= len(phrases) * (GUARD_SAMPLES / rate + 0.02)
