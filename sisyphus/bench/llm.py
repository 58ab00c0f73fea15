"""`sisyphus bench llm`: time to first token and tokens/s of the configured chat endpoint.

Only run when named: it measures someone else's server (and may cost money), not
Sisyphus. Each timed request is one short prompt, streamed, on one reused connection (as
a session's ChatClient reuses it), after the warm-up requests that pay for connection
and TLS setup.

- time to first token: request sent → first delta with text (what a turn waits for).
- tokens/s: tokens after the first one / time from the first to the last text delta, so
  it is the decode rate and does not count the wait for the first token. Tokens are the
  server's own count (`usage.completion_tokens`, asked for with
  `stream_options.include_usage`); a server that does not report usage gets its text
  deltas counted instead (most servers send one token per delta), and the note says so.

Before any timing, the endpoint is probed as `sisyphus doctor` does, so a server that is
down, a refused key or an unknown model stops the stage with the usual one-line LLMError.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import openai

from sisyphus.bench.context import BenchContext
from sisyphus.config import LlmConfig
from sisyphus.errors import LLMError
from sisyphus.llm.client import PLACEHOLDER_API_KEY, ChatClient
from sisyphus.safetext import redact_url

log = logging.getLogger(__name__)

STAGE = "llm"
# Short prompts whose answers run to a few dozen tokens: enough deltas for a rate.
PROMPTS = (
    "Count from one to twenty in words, separated by commas.",
    "Name ten animals that live in the sea, in one sentence.",
    "Describe a sunny morning in a park in three short sentences.",
    "List the days of the week and the months of the year.",
)
# Upper bound on each reply (and on llm.max_tokens): the rate needs tokens, not essays.
MAX_TOKENS = 128
# One request (first byte to last) longer than this is a stalled server.
REQUEST_LIMIT_S = 120.0

TTFT = "time to first token"
RATE = "tokens/s"


@dataclass(frozen=True)
class StreamTiming:
    """One streamed request: seconds from sending it, and how many tokens came back."""

    first_token_s: float
    last_token_s: float
    tokens: int
    usage_reported: bool  # tokens is the server's usage count (else: text deltas counted)

    @property
    def tokens_per_s(self) -> float | None:
        """Decode rate after the first token; None when a single delta carried the reply."""
        span_s = self.last_token_s - self.first_token_s
        if self.tokens < 2 or span_s <= 0:
            return None
        return (self.tokens - 1) / span_s


def run(ctx: BenchContext) -> None:
    """Probe the endpoint, then time ctx.warmup + ctx.repeats streamed prompts and report them."""
    config = ctx.config.llm
    ctx.say(f"llm: {config.model} at {redact_url(config.base_url)}, {ctx.warmup} warm-up + {ctx.repeats} prompts")
    timings = asyncio.run(measure(config, ctx.warmup, ctx.repeats))
    report_timings(ctx, config, timings)


async def measure(config: LlmConfig, warmup: int, repeats: int, *, include_usage: bool = True) -> list[StreamTiming]:
    """Timings of `repeats` requests after `warmup` untimed ones; LLMError on any failure."""
    async with ChatClient(config) as probe:
        await probe.check()  # down, refused key, unknown model: the usual one-line errors
    client = openai.AsyncOpenAI(
        base_url=config.base_url,
        api_key=config.api_key or PLACEHOLDER_API_KEY,
        timeout=openai.Timeout(config.timeout_s),
        max_retries=0,
    )
    timings: list[StreamTiming] = []
    try:
        for index in range(warmup + repeats):
            prompt = PROMPTS[index % len(PROMPTS)]
            timing = await asyncio.wait_for(time_request(client, config, prompt, include_usage), REQUEST_LIMIT_S)
            if index >= warmup:
                timings.append(timing)
    except asyncio.TimeoutError as exc:
        raise LLMError(f"an LLM request to {redact_url(config.base_url)} took longer than {REQUEST_LIMIT_S:.0f} s",
                       "check the LLM server") from exc
    finally:
        await client.close()
    return timings


async def time_request(client: openai.AsyncOpenAI, config: LlmConfig, prompt: str,
                       include_usage: bool = True) -> StreamTiming:
    """Stream one reply and time its text deltas (the clock starts before the request is sent)."""
    options: Any = {"include_usage": True} if include_usage else openai.omit
    started = time.perf_counter()
    first_s = last_s = None
    deltas = 0
    usage_tokens: int | None = None
    try:
        stream = await client.chat.completions.create(
            model=config.model,
            messages=[{"role": "user", "content": prompt}],
            temperature=config.temperature,
            max_tokens=min(config.max_tokens, MAX_TOKENS),
            stream=True,
            stream_options=options,
        )
        async with stream:
            async for chunk in stream:
                now_s = time.perf_counter() - started
                if getattr(chunk, "usage", None) is not None and chunk.usage.completion_tokens:
                    usage_tokens = int(chunk.usage.completion_tokens)
                if any(c.delta is not None and c.delta.content for c in chunk.choices or ()):
                    first_s = now_s if first_s is None else first_s
                    last_s = now_s
                    deltas += 1
    except openai.APIError as exc:  # connection, status and mid-stream error events alike
        raise _failure(config, exc) from exc
    if first_s is None or last_s is None:
        raise LLMError(f"the LLM endpoint {redact_url(config.base_url)} streamed a reply with no text",
                       "check llm.model and the server's log")
    tokens = usage_tokens if usage_tokens is not None else deltas
    return StreamTiming(first_s, last_s, tokens, usage_tokens is not None)


def _failure(config: LlmConfig, exc: Exception) -> LLMError:
    """A failure after the probe passed (the probe turns the usual ones into their own lines)."""
    if isinstance(exc, openai.APITimeoutError):
        return LLMError(f"the LLM endpoint {redact_url(config.base_url)} stopped answering for {config.timeout_s:g} s",
                        "check the LLM server, or raise llm.timeout_s")
    if isinstance(exc, openai.APIConnectionError):
        return LLMError(f"the LLM endpoint {redact_url(config.base_url)} dropped the connection",
                        "check the LLM server's log and run the stage again")
    status = f"HTTP {exc.status_code}: " if isinstance(exc, openai.APIStatusError) else ""
    detail = " ".join(str(getattr(exc, "message", exc)).split())[:160]
    return LLMError(f"the LLM endpoint rejected a benchmark request ({status}{detail})",
                    "check llm.model, llm.temperature and OPENAI_API_KEY for this server")


def report_timings(ctx: BenchContext, config: LlmConfig, timings: list[StreamTiming]) -> None:
    rates = [t.tokens_per_s for t in timings]
    counted = "the server's usage counts" if all(t.usage_reported for t in timings) else (
        "text deltas counted (the server reported no usage)")
    meta = {"model": config.model, "tokens": [t.tokens for t in timings], "usage_reported":
            [t.usage_reported for t in timings]}
    host = urlsplit(redact_url(config.base_url)).netloc or redact_url(config.base_url)
    ctx.report.add(STAGE, TTFT, "ms", [t.first_token_s * 1000 for t in timings], f"{config.model} at {host}",
                   meta=meta)
    measured = [r for r in rates if r is not None]
    if measured:
        ctx.report.add(STAGE, RATE, "tok/s", measured, f"after the first token; {counted}", meta=meta)
    if len(measured) < len(rates):
        ctx.report.note(STAGE, f"{len(rates) - len(measured)} replies came in one delta: no rate for them")
    ctx.report.note(STAGE, f"{len(timings)} streamed prompts of at most {min(config.max_tokens, MAX_TOKENS)} tokens "
                           f"at temperature {config.temperature:g}, after {ctx.warmup} warm-up request(s)")
