"""The text sanitiser and URL redaction, by examples and by properties (hypothesis)."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sisyphus.safetext import (
    display_safe,
    escape_json_controls,
    printable,
    redact_url,
    redact_urls,
)

BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# Characters `printable` leaves alone: everything but controls, surrogates, breaks, bidi.
SAFE_TEXT = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters=BIDI
    ),
    max_size=200,
)
# Text with the hostile parts mixed in: escape sequences, C1 controls, breaks, surrogates.
ESCAPES = st.sampled_from([
    "\x1b[2J", "\x1b[31;1m", "\x1b]0;title\x07", "\x1b]8;;http://x\x1b\\", "\x1bP+q\x1b\\", "\x1b(B", "\x1b",
    "\x9b31m", "\x9d0;t\x9c", "\r\n", "\n", "\t", "\x00", "\x7f", "\u2028", "\u202e", "\ud800", "\x1b[",
])
HOSTILE_TEXT = st.lists(st.one_of(SAFE_TEXT, ESCAPES), max_size=20).map("".join)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("Hello \x1b[2J\x1b]0;pwned\x07there.", "Hello there."),
        ("red\x1b[31m text\x1b[0m", "red text"),
        ("C1 \x9b31mcsi", "C1 csi"),
        ("line one\nline two\r\nthree\tfour", "line one line two three four"),
        ("evil \u202eexe.txt", "evil exe.txt"),
        ("bad \ud800 half", "bad \ufffd half"),
        ("你好，世界 ✓ é", "你好，世界 ✓ é"),
        ("unterminated \x1b]0;title", "unterminated "),
    ],
)
def test_printable_examples(raw: str, shown: str) -> None:
    assert printable(raw) == shown


@settings(max_examples=500, deadline=None)
@given(HOSTILE_TEXT)
def test_printable_leaves_no_control_bidi_or_surrogate_and_is_idempotent(text: str) -> None:
    clean = printable(text)
    assert not any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in clean)
    assert not set(clean) & set(BIDI)
    assert printable(clean) == clean
    clean.encode("utf-8")  # always writable to a UTF-8 terminal


@settings(max_examples=300, deadline=None)
@given(SAFE_TEXT)
def test_printable_keeps_harmless_text_unchanged(text: str) -> None:
    assert printable(text) == text


@settings(max_examples=300, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | HOSTILE_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(HOSTILE_TEXT, inner, max_size=4),
    max_leaves=12,
))
def test_an_escaped_json_line_decodes_to_the_raw_value_and_holds_no_raw_controls(value: object) -> None:
    line = escape_json_controls(json.dumps(value, ensure_ascii=False))
    assert json.loads(line) == value
    assert not any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") or ch in BIDI for ch in line)
    line.encode("utf-8")


SECRET = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.~", min_size=6, max_size=20).map(lambda s: f"S3CR{s}")
HOST = st.sampled_from(["127.0.0.1:8000", "api.example.com", "[::1]:11434", "localhost"])
PATH = st.sampled_from(["", "/v1", "/openai/v1/", "/v1/chat"])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["http", "https"]), SECRET, SECRET, HOST, PATH,
       st.sampled_from(["key", "api_key", "API-KEY", "token", "access_token", "sig"]), SECRET)
def test_redacted_urls_show_no_user_password_or_secret_query_value(scheme, user, password, host, path, name, value):
    url = f"{scheme}://{user}:{password}@{host}{path}?{name}={value}&api-version=2024"
    shown = redact_url(url)
    assert user not in shown and password not in shown and value not in shown
    assert shown.startswith(f"{scheme}://***@{host}{path}?") and "api-version=2024" in shown
    assert redact_url(shown) == shown
    text = f"LLM endpoint {url} is unreachable; also see {url}."
    assert "S3CR" not in redact_urls(text)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["http", "https"]), HOST, PATH, st.sampled_from(["", "?api-version=2024", "?model=x&n=1"]))
def test_urls_without_credentials_are_unchanged(scheme, host, path, query):
    url = f"{scheme}://{host}{path}{query}"
    assert redact_url(url) == url
    assert redact_urls(f"see {url} now") == f"see {url} now"


@dataclass(frozen=True)
class _Event:
    text: str
    lines: tuple[str, ...]
    count: int


def test_display_safe_cleans_every_string_field_of_any_event() -> None:
    event = _Event("hi\x1b[2J http://u:p@h/v1", ("a\nb", "c\x07"), 3)
    assert display_safe(event) == _Event("hi http://***@h/v1", ("a b", "c"), 3)
    assert display_safe("not an event") == "not an event"


def test_device_names_with_brackets_or_escapes_are_listed_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from sisyphus.agent import doctor
    from sisyphus.audio import devices

    names = ["USB Audio [hw:1,0]", "odd [/x] name", "evil\x1b]0;t\x07 mic"]
    monkeypatch.setattr(devices, "list_devices", lambda: [
        {"index": i, "name": name, "max_input_channels": 1, "max_output_channels": 0, "default_samplerate_hz": 48000.0,
         "default_input": i == 0, "default_output": False}
        for i, name in enumerate(names)
    ])  # fmt: skip
    console = Console(record=True, width=200, force_terminal=False)
    doctor.print_devices(console)
    shown = console.export_text()
    assert "USB Audio [hw:1,0]" in shown and "odd [/x] name" in shown and "evil mic" in shown
    assert "\x1b" not in shown and "\x07" not in shown
