"""Properties of reading an LLM stream (hypothesis): whatever the server sends, the client
yields text deltas and ends, or raises one LLMError; a well-formed stream gives back
exactly the reply, however it was split.

The chunk reader is checked alone over any JSON value, and the whole client over a real
HTTP server on 127.0.0.1 (fewer examples: each is a request).
"""

from __future__ import annotations

import asyncio
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sisyphus.bench.llm_server import Behavior, OpenAITestServer, chunk_event
from sisyphus.config import LlmConfig
from sisyphus.errors import LLMError
from sisyphus.llm.client import ChatClient
from sisyphus.llm.stream import read_chunk

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
# Values shaped like chunks, so the generator reaches the deep fields, not only the top.
DELTA = st.fixed_dictionaries({}, optional={"content": JSON, "refusal": JSON, "role": JSON})
CHOICE = st.fixed_dictionaries(
    {}, optional={"index": st.sampled_from([0, 1, None, "0"]), "delta": DELTA | JSON, "finish_reason": JSON}
)
CHUNK = (
    st.fixed_dictionaries({}, optional={"choices": st.lists(CHOICE | JSON, max_size=3) | JSON, "usage": JSON}) | JSON
)


@settings(max_examples=500, deadline=None)
@given(CHUNK)
def test_any_chunk_is_text_and_a_finish_reason_or_one_llm_error(chunk):
    try:
        text, finish = read_chunk(chunk)
    except LLMError as exc:
        assert exc.message.startswith("the LLM stream sent ") and len(exc.message) < 200
        return
    assert isinstance(text, str) and (finish is None or isinstance(finish, str))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.sampled_from([None, "stop", "length"]))
def test_a_well_formed_chunk_gives_back_its_content(content, finish):
    chunk = json.loads(chunk_event(content or None, finish))
    assert read_chunk(chunk) == (content, finish)


def _config(url: str) -> LlmConfig:
    return LlmConfig(base_url=url, model="test-model", timeout_s=5.0, max_retries=0)


async def _consume(url: str) -> tuple[list[str], str | None, LLMError | None]:
    async with ChatClient(_config(url)) as client:
        stream = client.stream([{"role": "user", "content": "hi"}])
        deltas: list[str] = []
        try:
            async for delta in stream:
                assert isinstance(delta, str) and delta
                deltas.append(delta)
        except LLMError as exc:
            return deltas, stream.finish_reason, exc
        return deltas, stream.finish_reason, None


def test_whatever_the_server_streams_the_client_yields_text_or_raises_one_llm_error():
    with OpenAITestServer(models=("test-model",)) as server:

        @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(st.lists(CHUNK.map(lambda c: json.dumps(c)) | st.binary(max_size=12), max_size=4))
        def check(events):
            server.script(Behavior(events=tuple(events)))
            deltas, _, error = asyncio.run(_consume(server.base_url))
            assert error is not None or deltas, "a stream without text must be an error"

        check()


def test_a_well_formed_stream_gives_back_the_reply_however_it_is_split():
    with OpenAITestServer(models=("test-model",)) as server:

        @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(st.text(min_size=1, max_size=80), st.integers(min_value=1, max_value=9),
               st.sampled_from(["stop", "length"]))  # fmt: skip
        def check(reply, chunk_chars, finish):
            server.script(Behavior(reply=reply, chunk_chars=chunk_chars, finish_reason=finish))
            deltas, finish_reason, error = asyncio.run(_consume(server.base_url))
            assert error is None and "".join(deltas) == reply and finish_reason == finish

        check()
