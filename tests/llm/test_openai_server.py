"""The test server itself speaks the OpenAI protocol as real clients expect it."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from sisyphus.bench.llm_server import CLIENT_CLOSED, STALLED, Behavior, OpenAITestServer, echo_reply

REPO = Path(__file__).resolve().parents[2]


def post_chat(port: int, body: dict) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_streaming_wire_format() -> None:
    with OpenAITestServer(default=Behavior(reply="Hi there", chunk_chars=3)) as server:
        status, headers, raw = post_chat(
            server.port, {"model": "test-model", "stream": True, "messages": [{"role": "user", "content": "x"}]}
        )
    assert status == 200
    assert headers["content-type"] == "text/event-stream"
    events = [line for line in raw.decode().split("\n\n") if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[len("data: ") :]) for e in events[:-1]]
    assert [c["object"] for c in chunks] == ["chat.completion.chunk"] * 5
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == ["", "Hi ", "the", "re", None]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, None, "stop"]


def test_non_streaming_and_models_through_the_openai_client() -> None:
    with OpenAITestServer(models=["m1", "m2"], default=Behavior(reply=echo_reply)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        try:
            completion = client.chat.completions.create(
                model="m2", messages=[{"role": "user", "content": "ping"}], temperature=0.2
            )
            models = [m.id for m in client.models.list().data]
        finally:
            client.close()
        assert completion.choices[0].message.content == echo_reply([{"role": "user", "content": "ping"}])
        assert models == ["m1", "m2"]
        (request,) = server.chat_requests
        assert (request.model, request.temperature, request.stream) == ("m2", 0.2, False)


def test_scripted_behaviors_are_used_in_order_then_the_default() -> None:
    with OpenAITestServer(default=Behavior(reply="ok")) as server:
        server.script(Behavior(status=500), Behavior(status=429, retry_after_s=2))
        body = {"model": "test-model", "messages": []}
        first, second, third = (post_chat(server.port, body) for _ in range(3))
    assert first[0] == 500 and json.loads(first[2])["error"]["message"] == "scripted HTTP 500"
    assert second[0] == 429 and second[1]["retry-after"] == "2"
    assert third[0] == 200 and json.loads(third[2])["choices"][0]["message"]["content"] == "ok"


def test_bad_requests_get_openai_style_errors() -> None:
    with OpenAITestServer() as server:
        status, _, raw = post_chat(server.port, {"model": "nope", "messages": []})
        assert status == 404 and json.loads(raw)["error"]["code"] == "model_not_found"
        status, _, raw = post_chat(server.port, {"model": "test-model"})
        assert status == 400 and "messages" in json.loads(raw)["error"]["message"]


def test_close_releases_a_stalled_handler() -> None:
    server = OpenAITestServer(default=Behavior(reply="abcdef", chunk_chars=1, stall_after=2))
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    body = json.dumps({"model": "test-model", "stream": True, "messages": []}).encode()
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    received = b""
    while received.count(b"data: ") < 3:  # role chunk + 2 deltas, then silence
        received += sock.recv(4096)
    server.close()
    (request,) = server.wait_for_requests(1)
    assert request.outcome == STALLED and request.deltas_sent == 2
    assert not server._thread.is_alive()
    sock.close()


def test_server_sees_a_client_hang_up_during_a_stall() -> None:
    with OpenAITestServer(default=Behavior(stall_after=1)) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        body = json.dumps({"model": "test-model", "stream": True, "messages": []}).encode()
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        received = b""
        while received.count(b"data: ") < 2:
            received += sock.recv(4096)
        sock.close()
        (request,) = server.wait_for_requests(1)
        assert request.outcome == CLIENT_CLOSED


@pytest.mark.timeout(60)
def test_standalone_process() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sisyphus.bench.llm_server", "--port", str(port), "--reply", "Standalone works.",
         "--first-token-ms", "0", "--inter-token-ms", "0"],
        cwd=REPO, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline()  # logged once the socket is listening
        assert banner.startswith(f"serving http://127.0.0.1:{port}/v1")
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
        try:
            stream = client.chat.completions.create(
                model="test-model", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        finally:
            client.close()
        assert text == "Standalone works."
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        if proc.stderr is not None:
            proc.stderr.close()
