"""Replies prepared at a pause, in the real `sisyphus talk --input/--output` on tiny models.

The user trails off ("I'd like to book a table for, um"), pauses, and goes on. Smart Turn
hears the pause as unfinished, so the turn waits; a reply is prepared at the pause
anyway (the LLM stand-in on 127.0.0.1 is really asked) and must never be heard. At the
end of the continuation a reply is prepared again, and that one plays: no LLM request
is made after the turn ends. Each LLM reply is numbered, so the transcript and the
server's records say which reply was played.
"""

from __future__ import annotations

import itertools

import pytest
import soundfile as sf

from sisyphus.bench.llm_server import Behavior, OpenAITestServer
from tests.e2e.harness import of_type, read_wav, run_talk, sound_spans, talk_env, transcript, write_config
from tests.support.speech import espeak, timeline

pytestmark = pytest.mark.slow


def test_a_continuation_after_the_pause_never_plays_the_early_reply_and_the_last_pause_plays_its_own(
    tmp_path, tiny_glmasr_folder, tiny_tts_custom_folder, tiny_tts_base_folder
):
    numbers = itertools.count(1)
    # 0.8 s of silence placed between the clips is about 1.1 s without voice (espeak pads its clips):
    # past the short silence and the pause that prepares a reply, short of vad.incomplete_silence_ms.
    audio, (first, second) = timeline(
        [0.6, espeak("I'd like to book a table for, um"), 0.8, espeak("for two people at seven tonight."), 2.0]
    )
    sf.write(tmp_path / "in.wav", audio, 16000)

    with OpenAITestServer(models=("test-model",), default=Behavior(reply=lambda _: f"Reply {next(numbers)}."))\
            as server:
        config = write_config(tmp_path, asr=tiny_glmasr_folder, tts_custom=tiny_tts_custom_folder,
                              tts_base=tiny_tts_base_folder, llm_url=server.base_url)
        result = run_talk(config, talk_env(tmp_path), "--input", str(tmp_path / "in.wav"),
                          "--output", str(tmp_path / "out.wav"))
        requests = server.chat_requests

    assert result.returncode == 0, result.stderr[-3000:]
    records = transcript(tmp_path)
    (user,) = of_type(records, "user")  # one turn: the pause did not end it
    (reply,) = of_type(records, "assistant")
    (turn_end,) = of_type(records, "turn_end")
    prepared = of_type(records, "preempt")
    hits = [p for p in prepared if p["hit"]]
    misses = [p for p in prepared if not p["hit"]]
    assert user["turn_id"] == reply["turn_id"] == turn_end["turn_id"] == 1
    assert turn_end["reason"] in ("complete", "incomplete")
    assert [h["turn_id"] for h in hits] == [1] and hits[0]["text"] == user["text"]
    assert misses and all(m["turn_id"] is None for m in misses)
    assert records.index(misses[0]) < records.index(user)

    # The LLM was asked at the pause (a reply prepared there) and never after the end of turn:
    # the reply played is the last one asked for, prepared at the last pause.
    assert 2 <= len(requests) <= len(prepared)
    assert reply["full_text"] == reply["text"] == f"Reply {len(requests)}."
    assert reply["interrupted"] is False
    assert requests[-1].messages[-1] == {"role": "user", "content": user["text"]}
    assert [m["role"] for m in requests[-1].messages] == ["system", "user"]  # no dropped reply in the history
    early = {f"Reply {n}." for n in range(1, len(requests))}
    assert not early & {r.get("full_text") for r in of_type(records, "assistant")}

    # Nothing was heard before the user finished: the first sound comes after the continuation.
    played, rate = read_wav(tmp_path / "out.wav")
    spans = sound_spans(played, rate, gap_s=0.5)
    assert spans, "the prepared reply should have played"
    assert spans[0][0] > second.voiced_end_s, (spans, second)
