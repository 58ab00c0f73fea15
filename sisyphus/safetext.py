"""Text from outside Sisyphus made safe to show, speak and store.

Model output (LLM replies, ASR transcripts) and server messages are untrusted: an escape
sequence in them would clear the screen or retitle the window if it reached the terminal,
a newline would forge a line of the `--plain` log, and a bidi override would reorder what
the user reads. URLs in config and errors may carry credentials (`http://user:secret@host`,
`?api_key=...`). This module cleans such text at the edges where it leaves the process:

- `printable` strips escape sequences and control characters for the terminal (and TTS);
- `display_safe` applies it to every string field of a UI event;
- `redact_url` / `redact_urls` hide credentials wherever a URL is shown or stored;
- `escape_json_controls` keeps a JSON line raw but inert when `cat`-ed to a terminal.

What it does not do: it never changes what is stored as the conversation (the transcript
keeps the raw text, JSON-escaped) and knows nothing about markdown (see llm/chunker.py).
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

REDACTED = "***"

# ESC-introduced sequences (ECMA-48): CSI with parameters, string commands (OSC, DCS, SOS,
# PM, APC) up to their terminator (BEL or ST) or the end of the text, and two-byte escapes.
# The 8-bit C1 forms (U+009B CSI, U+009D OSC, ...) are the same commands in one character.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])(?:[^\x07\x1b\x9c]*)(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?"
)
# Line and paragraph breaks of every kind: one line per event in the plain log.
_BREAKS = re.compile(r"\r\n|[\n\r\t\v\f\x1c-\x1e\x85\u2028\u2029]")
# Format characters that reorder or hide text on screen (Trojan-source style spoofing).
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Characters a JSON line keeps raw with ensure_ascii=False that a terminal or a UTF-8
# encoder would act on: C1 controls, DEL, bidi formats, line separators, lone surrogates.
_JSON_INERT = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]")

# Query parameters that carry a secret (Gemini's `key`, Azure's `sig`, `api_key`, ...).
_SECRET_PARAMS = frozenset(
    "key apikey api_key api-key token access_token auth auth_token password passwd secret sig signature "
    "client_secret x-api-key".split()
)
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>`]+")


def printable(text: str) -> str:
    """`text` without escape sequences or control characters, on one line.

    Line breaks and tabs become spaces, other control and bidi characters are dropped,
    lone surrogates (from JSON `\\ud800`) become U+FFFD so the text can be encoded.
    Idempotent; text without any of these characters comes back unchanged.
    """
    if text.isprintable() and not _BIDI.intersection(text):
        return text  # the common case: nothing to do
    text = _ESCAPES.sub("", text)
    text = _BREAKS.sub(" ", text)
    return "".join(_keep(ch) for ch in text)


def _keep(ch: str) -> str:
    category = unicodedata.category(ch)
    if category == "Cs":
        return "\ufffd"
    if category == "Cc" or ch in _BIDI:
        return ""
    return ch


def display_safe(event: object) -> object:
    """The event with every string field (and tuple of strings) made `printable` and redacted.

    Views call it first thing, so new event types are covered without a change here.
    """
    if not dataclasses.is_dataclass(event) or isinstance(event, type):
        return event
    changes = {}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if isinstance(value, str):
            clean = safe_line(value)
        elif isinstance(value, tuple) and value and all(isinstance(v, str) for v in value):
            clean = tuple(safe_line(v) for v in value)
        else:
            continue
        if clean != value:
            changes[f.name] = clean
    if not changes:
        return event
    try:
        return dataclasses.replace(event, **changes)
    except (TypeError, ValueError):
        return event  # a field not settable through __init__: leave the event as it was


def safe_line(text: str) -> str:
    """Printable and with credentials in URLs redacted: for any line shown to the user."""
    return printable(redact_urls(text))


def redact_url(url: str) -> str:
    """The URL with its user-info and secret-looking query values replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url if "@" not in url else REDACTED  # unparseable: do not risk showing a secret
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_secret_param(name) for name, _ in pairs):
            query = "&".join(
                f"{quote(name, safe='')}={REDACTED if _secret_param(name) else quote(value, safe='')}"
                for name, value in pairs
            )
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_urls(text: str) -> str:
    """`text` with `redact_url` applied to every URL in it."""
    if "://" not in text:
        return text
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


def _secret_param(name: str) -> bool:
    return name.lower() in _SECRET_PARAMS


def escape_json_controls(line: str) -> str:
    """A JSON text with the characters of `_JSON_INERT` written as \\uXXXX escapes.

    `json.dumps(..., ensure_ascii=False)` escapes C0 controls but leaves C1 controls, bidi
    formats and lone surrogates raw; those only ever occur inside JSON strings, where the
    escape means the same character, so the line still decodes to the same raw text.
    """
    return _JSON_INERT.sub(lambda m: f"\\u{ord(m.group(0)):04x}", line)


class SafeLogRecords:
    """A logging filter that makes each record's message a `safe_line` (log lines quote
    server and model text too); tracebacks are left as they are."""

    def filter(self, record: object) -> bool:
        try:
            message = record.getMessage()  # type: ignore[attr-defined]
        except Exception:  # a broken format string: let logging report it as usual
            return True
        clean = safe_line(message)
        if clean != message:
            record.msg, record.args = clean, None  # type: ignore[attr-defined]
        return True
