"""Cut a streamed LLM reply into speakable phrases for TTS.

TTS wants whole units: a sentence sounds right, a half word does not, and waiting for
the whole reply costs seconds. So phrases are cut at sentence ends (. ! ? … 。！？) and,
once long enough, at clause ends (, ; : — ，；：、), with a shorter clause allowed for the
first phrase so the first audio comes early. Lines end phrases too (lists, headings).

The cut positions depend only on the text, never on how it was split into deltas: a
boundary is decided only when the characters that decide it have arrived (the one after
a '.' tells "3.14" from "3. "), so `push` may hold back a few characters.

Phrases come out cleaned for speech: markdown marks (*, #, `, bullets, link targets) and
emoji removed, whitespace collapsed; code blocks and inline <think> reasoning are skipped;
a phrase with nothing left to say is dropped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from sisyphus.safetext import printable

# Sentence ends that need whitespace (or CJK text, or the end) after them.
_ASCII_SENTENCE = ".!?"
_ASCII_CLAUSE = ",;:"
# Ends that need nothing after them (CJK text has no spaces).
_WIDE_SENTENCE = "。！？…"
_WIDE_CLAUSE = "，；：、—"
# May follow an end and still belong to the phrase: quotes, brackets, markdown closers.
_CLOSERS = "\"'”’」』）)]】》*_`"
# Words before a '.' that do not end a sentence.
_ABBREVIATIONS = frozenset("mr mrs ms dr prof sr jr st vs etc approx fig inc ltd corp dept".split())

_CJK_RANGES = ((0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7AF), (0xF900, 0xFAFF))
# Writing without spaces between words: CJK punctuation, kana, Han, fullwidth forms (Hangul
# is spaced like English, so it is not here).
_UNSPACED_RANGES = (
    (0x3000, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0xFF00, 0xFF65), (0x20000, 0x3134F),
)  # fmt: skip
# Characters TTS cannot speak: pictographs, dingbats, flags, joiners and selectors.
_EMOJI = re.compile(
    "[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\U0001F1E6-\U0001F1FF"
    "\uFE0E\uFE0F\u200D\u20E3\U000E0020-\U000E007F]"
)
_CODE_FENCE = re.compile(r"```[^\s`]*")
# Code blocks and the reasoning some local models write inline are not read aloud.
_SILENT_MARKS = re.compile(r"(```|</?think>)")
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_LINE_MARKUP = re.compile(r"(?m)^[ \t]*(?:#{1,6}[ \t]+|[-*+•][ \t]+|>[ \t]*)")
_EMPHASIS = re.compile(r"[*`~|]+|(?<!\w)_+|_+(?!\w)")
_SPACES = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,!?;:。，！？；：、…])")


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in _CJK_RANGES)


def _unspaced(ch: str) -> bool:
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in _UNSPACED_RANGES)


def join_phrases(parts: Iterable[str]) -> str:
    """Phrases (or ASR pieces) as one text: a space between them, except after Chinese or
    Japanese text, which has none ("你好。" + "今天" → "你好。今天", "Hi." + "Bye." → "Hi. Bye.")."""
    joined = ""
    for part in parts:
        part = part.strip()
        if not part:
            continue
        if joined and not (_unspaced(joined[-1]) or _unspaced(part[0]) and not part[0].isalnum()):
            joined += " "
        joined += part
    return joined


def spoken_prefix(text: str, units: float) -> str:
    """The start of `text` that fits in `units` (whole words where the text has spaces)."""
    if _units(text, spaces=True) <= units:
        return text
    words = text.split(" ")
    if len(words) > 1:
        kept: list[str] = []
        for word in words:
            if _units(" ".join([*kept, word]), spaces=True) > units:
                break
            kept.append(word)
        return " ".join(kept)
    end, used = 0, 0
    while end < len(text) and used + _units(text[end], spaces=True) <= units:
        used += _units(text[end], spaces=True)
        end += 1
    return text[:end]


def _units(text: str, *, spaces: bool = False) -> int:
    """Length as TTS time: a CJK character says about as much as three Latin letters."""
    return sum(3 if _is_cjk(ch) else 1 for ch in text if spaces or not ch.isspace())


def clean_for_speech(text: str) -> str:
    """Remove what TTS would read out literally (markdown, escape sequences) or cannot say (emoji)."""
    text = _CODE_FENCE.sub(" ", printable(text))
    text = _IMAGE.sub(" ", text)
    text = _LINK.sub(r"\1", text)
    text = _LINE_MARKUP.sub("", text)
    text = _EMPHASIS.sub("", text)
    text = _EMOJI.sub("", text)
    text = _SPACES.sub(" ", text).strip()
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text)


def is_speakable(text: str) -> bool:
    """True when some letter or digit is left to say."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)


class PhraseChunker:
    """Turns text deltas into cleaned phrases; one instance per reply (or call flush)."""

    def __init__(
        self,
        *,
        min_clause_units: int = 25,
        first_min_clause_units: int = 12,
        max_units: int = 200,
    ) -> None:
        # A clause end cuts only once the phrase is this long (CJK chars count 3).
        self.min_clause_units = min_clause_units
        # The same for the first phrase of a reply, lower so audio starts sooner.
        self.first_min_clause_units = first_min_clause_units
        # A run without any usable end is cut at a word boundary after this length.
        self.max_units = max_units
        self._buf = ""
        self._scan = 0  # next index of _buf to examine; _buf[0] starts the current phrase
        self._emitted = False
        # Inside a ``` fence / a <think> block: neither is read aloud.
        self._silent = (False, False)

    def push(self, delta: str) -> list[str]:
        """Add a delta; return the phrases it completed."""
        self._buf += delta
        return self._cut(final=False)

    def flush(self) -> list[str]:
        """End of reply: return the remaining phrases and reset for the next reply."""
        phrases = self._cut(final=True)
        if self._buf:
            self._emit(len(self._buf), phrases)
        self._buf, self._scan, self._emitted, self._silent = "", 0, False, (False, False)
        return phrases

    # -- scanning -----------------------------------------------------------------------
    def _cut(self, *, final: bool) -> list[str]:
        phrases: list[str] = []
        i = self._scan
        while i < len(self._buf):
            end = self._boundary(i, final)
            if end is None:  # cannot decide yet: wait for more text
                break
            if end > 0 and self._accept(end, kind=self._kind(i)):
                self._emit(end, phrases)
                i = 0
                continue
            i += 1
            if _units(self._buf[:i], spaces=True) >= self.max_units:
                self._emit(self._word_break(i), phrases)
                i = 0
        self._scan = i
        return phrases

    def _spoken(self, raw: str) -> tuple[str, tuple[bool, bool]]:
        """The text outside code fences and <think> blocks, and which block is open after `raw`."""
        in_code, in_think = self._silent
        kept = []
        for part in _SILENT_MARKS.split(raw):
            if part == "```":
                in_code = not in_code
            elif part in ("<think>", "</think>"):
                in_think = part == "<think>"
            elif not (in_code or in_think):
                kept.append(part)
        return " ".join(kept), (in_code, in_think)

    def _emit(self, end: int, phrases: list[str]) -> None:
        spoken, self._silent = self._spoken(self._buf[:end])
        text = clean_for_speech(spoken)
        self._buf = self._buf[end:]
        if is_speakable(text):
            phrases.append(text)
            self._emitted = True

    def _word_break(self, limit: int) -> int:
        """Where to cut an over-long run: after its last whitespace, else at the limit."""
        space = max(self._buf.rfind(" ", 0, limit), self._buf.rfind("\t", 0, limit))
        return space + 1 if space > 0 else limit

    def _kind(self, i: int) -> str:
        ch = self._buf[i]
        if ch == "\n":
            return "line"
        return "sentence" if ch in _ASCII_SENTENCE or ch in _WIDE_SENTENCE else "clause"

    def _accept(self, end: int, *, kind: str) -> bool:
        """Whether a boundary ending at `end` makes a phrase worth sending on its own."""
        if kind == "line":
            return True
        text = clean_for_speech(self._spoken(self._buf[:end])[0])
        if not any(unicodedata.category(ch)[0] == "L" for ch in text):
            return False  # e.g. the "1." of a list item, or "...": keep it with what follows
        if kind == "sentence":
            return True
        needed = self.min_clause_units if self._emitted else self.first_min_clause_units
        return _units(text) >= needed

    def _boundary(self, i: int, final: bool) -> int | None:
        """The cut index if `_buf[i]` ends a phrase, 0 if it does not, None if undecided."""
        buf = self._buf
        ch = buf[i]
        if ch == "\n":
            return i + 1
        ascii_end = ch in _ASCII_SENTENCE or ch in _ASCII_CLAUSE
        if not ascii_end and ch not in _WIDE_SENTENCE and ch not in _WIDE_CLAUSE:
            return 0
        if i > 0 and buf[i - 1] == ch and ch in ".…—":
            return 0  # inside a run ("...", "……"): its first char decides
        j = i + 1
        while j < len(buf) and (buf[j] in _ASCII_SENTENCE or buf[j] in _WIDE_SENTENCE or buf[j] == "—"):
            j += 1  # the rest of "?!", "...", "……", "——"
        while j < len(buf) and buf[j] in _CLOSERS:
            j += 1
        if j == len(buf):
            return j if final else None
        nxt = buf[j]
        if not ascii_end:
            return j
        if not (nxt.isspace() or _is_cjk(nxt)):
            return 0  # "3.14", "e.g.x", "example.com", "1,000", "http://", "12:30"
        if ch == "." and j == i + 1 and self._abbreviation(i):
            return 0
        return j

    def _abbreviation(self, i: int) -> bool:
        """Whether the word before the '.' at `i` is an abbreviation ("Mr", "e.g", "U.S", "J")."""
        start = i
        while start > 0 and not self._buf[start - 1].isspace():
            start -= 1
        word = self._buf[start:i].lstrip("\"'“‘(*_[")
        if not word:
            return False
        if not any(c.isalpha() for c in word):
            return False  # a number: "2.718." and "$3.50." end sentences
        if "." in word:
            return True  # e.g, i.e, U.S, a.m, example.com
        if len(word) == 1 and word.isalpha():
            return True  # an initial: "J. K. Rowling"
        return word.lower() in _ABBREVIATIONS
