"""The llm stage against the stand-in server on 127.0.0.1, whose sleeps bound what can be measured.

The server waits `first_token_delay_s` before the first delta and `inter_token_delay_s`
between deltas, so no client can see a first token sooner or a rate above
1 / inter_token_delay_s. These are bounds implied by the server, not speed assertions.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
import torch

from sisyphus.agent.models import ModelSet
from sisyphus.bench import llm
from sisyphus.bench.context import BenchContext
from sisyphus.bench.llm_server import Behavior, OpenAITestServer
from sisyphus.bench.report import BenchReport
from sisyphus.config import Config, LlmConfig
from sisyphus.errors import LLMError

FIRST_S = 0.15
BETWEEN_S = 0.02
REPLY = "One, two, three, four, five, six, seven, eight."  # 47 characters
CHUNK = 4
DELTAS = -(-len(REPLY) // CHUNK)  # 12 deltas: 12 tokens in the server's usage


def make_ctx(llm_config: LlmConfig, *, repeats: int = 3, warmup: int = 1) -> BenchContext:
    config = Config(device="cpu", llm=llm_config)
    return BenchContext(config=config, device="cpu", dtype=torch.float32, repeats=repeats, warmup=warmup,
                        random_weights=False, size="real", report=BenchReport(),
                        models=ModelSet(config, device="cpu", dtype=torch.float32))


def llm_config(url: str, **extra) -> LlmConfig:
    return LlmConfig(base_url=url, model="test-model", timeout_s=10, max_retries=0, **extra)


@pytest.fixture()
def server():
    behavior = Behavior(reply=REPLY, chunk_chars=CHUNK, first_token_delay_s=FIRST_S, inter_token_delay_s=BETWEEN_S)
    with OpenAITestServer(default=behavior) as srv:
        yield srv


def test_stage_reports_first_token_and_rate_within_what_the_server_allows(server):
    ctx = make_ctx(llm_config(server.base_url, temperature=0.3))

    llm.run(ctx)

    ttft = ctx.report.find("llm", llm.TTFT)
    rate = ctx.report.find("llm", llm.RATE)
    assert ttft is not None and rate is not None
    assert (ttft.unit, rate.unit) == ("ms", "tok/s")
    assert ttft.n == rate.n == 3
    assert all(v >= FIRST_S * 1000 for v in ttft.values)
    # The server sleeps FIRST_S, then BETWEEN_S before each later delta, so the last of the
    # 12 tokens comes at least FIRST_S + 11 * BETWEEN_S after the request; the rate counts
    # the 11 tokens after the first over (last - first), where first is the measured TTFT.
    assert DELTAS == 12
    for first_ms, tokens_per_s in zip(ttft.values, rate.values):
        span_floor_s = FIRST_S + (DELTAS - 1) * BETWEEN_S - first_ms / 1000
        assert tokens_per_s > 0
        if span_floor_s > 0:  # a first token later than that leaves no bound
            assert tokens_per_s <= (DELTAS - 1) / span_floor_s * (1 + 1e-6)
    assert ttft.meta["tokens"] == [DELTAS] * 3
    assert ttft.meta["usage_reported"] == [True] * 3
    assert "usage counts" in rate.note
    # Warm-up and timed requests are real chat requests with the configured settings.
    # The probe found the model in /v1/models, so every chat is a warm-up or timed one.
    timed = server.chat_requests
    assert len(timed) == 1 + 3 and all(r.stream for r in timed)
    assert [r.messages[0]["content"] for r in timed] == [llm.PROMPTS[i % len(llm.PROMPTS)] for i in range(4)]
    assert all(r.temperature == 0.3 and r.body["max_tokens"] == llm.MAX_TOKENS for r in timed)
    assert all(r.include_usage for r in timed)


def test_without_usage_the_text_deltas_are_counted(server):
    config = llm_config(server.base_url)
    timings = asyncio.run(llm.measure(config, 0, 2, include_usage=False))

    assert [t.tokens for t in timings] == [DELTAS] * 2
    assert [t.usage_reported for t in timings] == [False, False]
    assert all(t.first_token_s >= FIRST_S for t in timings)
    # The server's sleeps add up before the last delta leaves (the first may arrive late).
    assert all(t.last_token_s >= FIRST_S + (DELTAS - 1) * BETWEEN_S for t in timings)
    ctx = make_ctx(config, repeats=2, warmup=0)
    llm.report_timings(ctx, config, timings)
    assert "text deltas counted" in ctx.report.find("llm", llm.RATE).note


def test_a_reply_in_one_delta_has_no_rate_and_says_so():
    with OpenAITestServer(default=Behavior(reply="Hi.", chunk_chars=10)) as server:
        ctx = make_ctx(llm_config(server.base_url), repeats=2, warmup=0)
        llm.run(ctx)
    assert ctx.report.find("llm", llm.TTFT).n == 2
    assert ctx.report.find("llm", llm.RATE) is None
    assert ("llm", "2 replies came in one delta: no rate for them") in ctx.report.notes


def test_endpoint_down_is_the_usual_one_line_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the socket closes
    ctx = make_ctx(llm_config(f"http://127.0.0.1:{port}/v1"))
    with pytest.raises(LLMError) as caught:
        llm.run(ctx)
    assert caught.value.one_line() == (
        f"LLM endpoint http://127.0.0.1:{port}/v1 is unreachable. "
        "start your LLM server or fix llm.base_url / OPENAI_BASE_URL"
    )
    assert ctx.report.figures == []


def test_refused_key_is_the_usual_one_line_error():
    with OpenAITestServer(api_key="right-key") as server:
        ctx = make_ctx(llm_config(server.base_url, api_key="wrong-key"))
        with pytest.raises(LLMError) as caught:
            llm.run(ctx)
    assert caught.value.message == "the LLM endpoint refused the API key (HTTP 401)"
    assert ctx.report.figures == []


def test_a_failure_after_the_probe_is_one_line_too():
    with OpenAITestServer(default=Behavior(reply=REPLY)) as server:
        server.script(Behavior(status=500))  # the probe lists models; the first chat fails
        ctx = make_ctx(llm_config(server.base_url), repeats=1, warmup=0)
        with pytest.raises(LLMError) as caught:
            llm.run(ctx)
    assert caught.value.message.startswith("the LLM endpoint rejected a benchmark request (HTTP 500: ")
    assert "\n" not in caught.value.one_line()
