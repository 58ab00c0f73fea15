"""ChatClient against a real OpenAI-compatible HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

import pytest

from sisyphus.config import LlmConfig
from sisyphus.errors import LLMError
from sisyphus.llm.client import ChatClient
from sisyphus.llm.history import History
from sisyphus.bench.llm_server import CLIENT_CLOSED, Behavior, OpenAITestServer

T = TypeVar("T")
REPLY = "The quick brown fox jumps over the lazy dog. 你好，世界！"
USER = [{"role": "user", "content": "hi"}]


def run(coro: Awaitable[T]) -> T:
    """Run one test coroutine; the outer bound only guards against a hung test."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout=30.0)

    return asyncio.run(bounded())


def llm_config(base_url: str, **overrides: Any) -> LlmConfig:
    values: dict[str, Any] = {"base_url": base_url, "model": "test-model", "timeout_s": 5.0, "max_retries": 2}
    values.update(overrides)
    return LlmConfig(**values)


async def collect(config: LlmConfig, messages: list[dict[str, str]] = USER) -> tuple[list[str], LLMError | None]:
    """All deltas of one reply and the error that ended it, if any."""
    deltas: list[str] = []
    async with ChatClient(config, backoff_s=0.01) as client:
        try:
            async for delta in client.stream(messages):
                deltas.append(delta)
        except LLMError as exc:
            return deltas, exc
    return deltas, None


def pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.fixture()
def server() -> Iterator[OpenAITestServer]:
    with OpenAITestServer(models=["test-model", "other-model"], default=Behavior(reply=REPLY, chunk_chars=3)) as srv:
        yield srv


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_deltas_arrive_in_order_and_equal_the_reply(server: OpenAITestServer) -> None:
    deltas, error = run(collect(llm_config(server.base_url)))
    assert error is None
    assert deltas == pieces(REPLY, 3)
    assert "".join(deltas) == REPLY
    assert len(server.chat_requests) == 1


def test_request_carries_system_prompt_history_user_text_and_settings() -> None:
    with OpenAITestServer(models=["other-model"], api_key="sk-right") as server:
        history = History("Be brief.", max_turns=2)
        history.add("first question", "first answer")
        history.add("second question", "second ans", interrupted=True)
        messages = history.messages("third question")
        config = llm_config(
            server.base_url, model="other-model", temperature=0.3, max_tokens=77, api_key="sk-right"
        )
        deltas, error = run(collect(config, messages))
        assert error is None
        assert "".join(deltas) == "Hello! This is the test server."
        (request,) = server.chat_requests
        assert request.messages == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": "second question"},
            {"role": "assistant", "content": "second ans…"},
            {"role": "user", "content": "third question"},
        ]
        assert request.model == "other-model"
        assert request.temperature == pytest.approx(0.3)
        assert request.body is not None and request.body["max_tokens"] == 77
        assert request.stream is True
        assert request.headers["authorization"] == "Bearer sk-right"


def test_wrong_key_is_one_error_with_the_key_hint_and_no_retry() -> None:
    with OpenAITestServer(api_key="sk-right") as server:
        deltas, error = run(collect(llm_config(server.base_url, api_key="sk-wrong")))
        assert deltas == []
        assert isinstance(error, LLMError)
        assert error.message == "the LLM endpoint refused the API key (HTTP 401)"
        assert "OPENAI_API_KEY" in error.hint
        assert len(server.chat_requests) == 1


def test_missing_key_says_a_key_is_required() -> None:
    with OpenAITestServer(api_key="sk-right") as server:
        _, error = run(collect(llm_config(server.base_url, api_key="")))
        assert isinstance(error, LLMError)
        assert error.message == "the LLM endpoint requires an API key (HTTP 401)"
        assert error.hint == "set OPENAI_API_KEY"
        assert server.chat_requests[0].headers["authorization"] == "Bearer sk-no-key-required"


def test_unknown_model_names_the_model_and_the_setting(server: OpenAITestServer) -> None:
    _, error = run(collect(llm_config(server.base_url, model="no-such-model")))
    assert isinstance(error, LLMError)
    assert "'no-such-model'" in error.message and "HTTP 404" in error.message
    assert "SISYPHUS_LLM_MODEL" in error.hint and "llm.model" in error.hint
    assert len(server.chat_requests) == 1


def test_wrong_base_url_path_says_so(server: OpenAITestServer) -> None:
    base_url = server.base_url.removesuffix("/v1")
    _, error = run(collect(llm_config(base_url)))
    assert isinstance(error, LLMError)
    assert error.message == f"the LLM endpoint {base_url} has no chat API (HTTP 404 for /chat/completions)"
    assert "/v1" in error.hint and "llm.base_url" in error.hint


def test_no_response_within_timeout_is_retried_then_reported(server: OpenAITestServer) -> None:
    server.script(*[Behavior(response_delay_s=30.0)] * 2)
    deltas, error = run(collect(llm_config(server.base_url, timeout_s=0.3, max_retries=1)))
    assert deltas == []
    assert isinstance(error, LLMError)
    assert error.message == f"LLM endpoint {server.base_url} did not answer within 0.3 s (2 attempts)"
    assert "llm.timeout_s" in error.hint
    assert [r.outcome for r in server.wait_for_requests(2)] == [CLIENT_CLOSED, CLIENT_CLOSED]


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_status_is_retried_then_succeeds(server: OpenAITestServer, status: int) -> None:
    server.script(Behavior(status=status))
    deltas, error = run(collect(llm_config(server.base_url)))
    assert error is None
    assert "".join(deltas) == REPLY
    assert len(server.chat_requests) == 2


def test_retry_after_header_is_honoured(server: OpenAITestServer, caplog: pytest.LogCaptureFixture) -> None:
    server.script(Behavior(status=429, retry_after_s=0.2))
    with caplog.at_level(logging.WARNING, logger="sisyphus.llm.client"):
        deltas, error = run(collect(llm_config(server.base_url)))
    assert error is None and "".join(deltas) == REPLY
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert retries == ["LLM request failed (HTTP 429), attempt 1/3; retrying in 0.20 s"]


def test_persistent_server_error_gives_up_after_max_retries(server: OpenAITestServer) -> None:
    server.script(*[Behavior(status=500)] * 3)
    _, error = run(collect(llm_config(server.base_url, max_retries=2)))
    assert isinstance(error, LLMError)
    assert error.message.startswith("the LLM endpoint answered HTTP 500 (3 attempts): scripted HTTP 500")
    assert len(server.chat_requests) == 3


def test_endpoint_down_fails_after_max_retries_plus_one_attempts(caplog: pytest.LogCaptureFixture) -> None:
    base_url = f"http://127.0.0.1:{closed_port()}/v1"
    with caplog.at_level(logging.WARNING, logger="sisyphus.llm.client"):
        deltas, error = run(collect(llm_config(base_url, max_retries=3)))
    assert deltas == []
    assert isinstance(error, LLMError)
    assert error.message == f"LLM endpoint {base_url} is unreachable (4 attempts)"
    assert error.hint == "start your LLM server or fix llm.base_url / OPENAI_BASE_URL"
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert [m.split("attempt ")[1][:3] for m in retries] == ["1/4", "2/4", "3/4"]


def test_dropped_connections_are_retried_and_counted_by_the_server(server: OpenAITestServer) -> None:
    server.script(*[Behavior(drop_connection=True)] * 2)
    deltas, error = run(collect(llm_config(server.base_url, max_retries=2)))
    assert error is None and "".join(deltas) == REPLY
    assert len(server.chat_requests) == 3

    server.script(*[Behavior(drop_connection=True)] * 3)
    deltas, error = run(collect(llm_config(server.base_url, max_retries=2)))
    assert deltas == [] and isinstance(error, LLMError)
    assert "is unreachable (3 attempts)" in error.message
    assert len(server.chat_requests) == 6


def test_stalled_stream_raises_after_the_deltas_that_arrived(server: OpenAITestServer) -> None:
    server.script(Behavior(reply=REPLY, chunk_chars=3, stall_after=4))
    deltas, error = run(collect(llm_config(server.base_url, timeout_s=0.5)))
    assert deltas == pieces(REPLY, 3)[:4]
    assert isinstance(error, LLMError)
    assert error.message == "the LLM stream stalled: no data for 0.5 s"
    assert "llm.timeout_s" in error.hint
    (request,) = server.wait_for_requests(1)
    assert request.outcome == CLIENT_CLOSED  # the client hung up; the stall was not retried


def test_stall_before_the_first_token_is_an_error_too(server: OpenAITestServer) -> None:
    server.script(Behavior(stall_after=0))
    deltas, error = run(collect(llm_config(server.base_url, timeout_s=0.5)))
    assert deltas == []
    assert isinstance(error, LLMError) and "stalled" in error.message
    assert len(server.chat_requests) == 1


def test_disconnect_mid_stream_raises_after_the_deltas_that_arrived(server: OpenAITestServer) -> None:
    server.script(Behavior(reply=REPLY, chunk_chars=3, disconnect_after=5))
    deltas, error = run(collect(llm_config(server.base_url)))
    assert deltas == pieces(REPLY, 3)[:5]
    assert isinstance(error, LLMError)
    assert error.message == f"the LLM stream from {server.base_url} broke off mid-reply"
    assert len(server.chat_requests) == 1  # nothing is retried once text was handed out


def test_error_event_mid_stream_is_reported(server: OpenAITestServer) -> None:
    server.script(Behavior(reply=REPLY, chunk_chars=3, error_event_after=2))
    deltas, error = run(collect(llm_config(server.base_url)))
    assert deltas == pieces(REPLY, 3)[:2]
    assert isinstance(error, LLMError)
    assert error.message == "the LLM endpoint reported an error mid-reply: scripted mid-stream error"


@pytest.mark.parametrize(
    ("finish_reason", "log"),
    [("length", "LLM reply cut at llm.max_tokens=512"), (None, "ended without a finish_reason")],
)
def test_unusual_stream_ends_keep_the_reply(
    server: OpenAITestServer, caplog: pytest.LogCaptureFixture, finish_reason: str | None, log: str
) -> None:
    server.script(Behavior(reply=REPLY, chunk_chars=3, finish_reason=finish_reason))
    with caplog.at_level(logging.INFO, logger="sisyphus.llm.client"):
        deltas, error = run(collect(llm_config(server.base_url)))
    assert error is None and "".join(deltas) == REPLY
    assert any(log in r.getMessage() for r in caplog.records)


def test_cancellation_mid_stream_closes_the_http_stream(server: OpenAITestServer) -> None:
    long_reply = "word " * 200
    server.script(Behavior(reply=long_reply, chunk_chars=5, inter_token_delay_s=0.05))

    async def scenario() -> list[str]:
        received: list[str] = []
        first = asyncio.Event()

        async def consume(client: ChatClient) -> None:
            async for delta in client.stream(USER):
                received.append(delta)
                first.set()

        async with ChatClient(llm_config(server.base_url), backoff_s=0.01) as client:
            task = asyncio.create_task(consume(client))
            await asyncio.wait_for(first.wait(), timeout=10.0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=5.0)
        return received

    received = run(scenario())
    (request,) = server.wait_for_requests(1)
    assert request.outcome == CLIENT_CLOSED
    assert 1 <= len(received) < 200
    assert request.deltas_sent < 200


def test_abandoned_stream_closed_with_aclosing(server: OpenAITestServer) -> None:
    server.script(Behavior(reply="word " * 200, chunk_chars=5, inter_token_delay_s=0.05))

    async def scenario() -> list[str]:
        received: list[str] = []
        async with ChatClient(llm_config(server.base_url)) as client:
            async with contextlib.aclosing(client.stream(USER)) as deltas:
                async for delta in deltas:
                    received.append(delta)
                    if len(received) == 3:
                        break
        return received

    assert run(scenario()) == ["word "] * 3
    (request,) = server.wait_for_requests(1)
    assert request.outcome == CLIENT_CLOSED


def test_check_reports_the_served_model(server: OpenAITestServer) -> None:
    async def probe() -> str:
        async with ChatClient(llm_config(server.base_url)) as client:
            return await client.check()

    assert run(probe()) == "serves test-model (2 models listed)"
    assert [r.path for r in server.requests] == ["/v1/models"]


def test_check_accepts_an_ollama_style_latest_tag() -> None:
    async def probe(base_url: str) -> str:
        async with ChatClient(llm_config(base_url, model="llama3")) as client:
            return await client.check()

    with OpenAITestServer(models=["llama3:latest"]) as server:
        assert run(probe(server.base_url)) == "serves llama3 (1 model listed)"


def test_check_raises_for_a_model_the_server_does_not_serve(server: OpenAITestServer) -> None:
    async def probe() -> str:
        async with ChatClient(llm_config(server.base_url, model="gpt-nope")) as client:
            return await client.check()

    with pytest.raises(LLMError, match="has no model 'gpt-nope'"):
        run(probe())
    assert [r.path for r in server.requests] == ["/v1/models", "/v1/chat/completions"]


def test_check_raises_for_a_wrong_key_and_a_closed_port() -> None:
    async def probe(config: LlmConfig) -> str:
        async with ChatClient(config) as client:
            return await client.check()

    with OpenAITestServer(api_key="sk-right") as server:
        with pytest.raises(LLMError, match="refused the API key"):
            run(probe(llm_config(server.base_url, api_key="sk-wrong")))
    base_url = f"http://127.0.0.1:{closed_port()}/v1"
    with pytest.raises(LLMError, match="is unreachable"):
        run(probe(llm_config(base_url)))


def test_session_goes_on_after_an_error(server: OpenAITestServer) -> None:
    """One client survives a failed turn: the next turn streams normally."""
    server.script(Behavior(disconnect_after=1))

    async def two_turns() -> tuple[LLMError | None, str]:
        async with ChatClient(llm_config(server.base_url)) as client:
            first_error = None
            try:
                async for _ in client.stream(USER):
                    pass
            except LLMError as exc:
                first_error = exc
            text = "".join([d async for d in client.stream(USER)])
        return first_error, text

    error, text = run(two_turns())
    assert isinstance(error, LLMError) and "broke off" in error.message
    assert text == REPLY


def test_a_server_that_ignores_max_tokens_is_cut_off(server: OpenAITestServer) -> None:
    server.script(Behavior(reply="word " * 400, chunk_chars=5, inter_token_delay_s=0.001))
    config = llm_config(server.base_url, max_tokens=8)  # at most 8 * 32 = 256 characters

    async def read() -> tuple[str, str | None]:
        async with ChatClient(config) as client:
            stream = client.stream(USER)
            text = "".join([delta async for delta in stream])
            return text, stream.finish_reason

    text, finish_reason = run(read())
    assert 256 < len(text) <= 256 + 5 and finish_reason == "length"
