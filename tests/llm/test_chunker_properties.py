"""Properties of the phrase chunker over generated replies (hypothesis).

The chunker sits between the LLM and TTS: whatever it drops is never said, whatever it
reorders is said wrong, and a cut that depends on how the deltas happened to be split
makes the same reply sound different from run to run.
"""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from sisyphus.llm.chunker import PhraseChunker, join_phrases

# Text a reply is made of, without the marks the chunker removes on purpose (markdown,
# code fences, <think>, emoji), so every letter and digit must come out.
WORDS = st.text(alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789éüß"), min_size=1, max_size=12)
CJK = st.text(alphabet=st.sampled_from("你好今天天气很好我们去公园散步吧こんにちは"), min_size=1, max_size=20)
SEPARATORS = st.sampled_from(
    [" ", " ", " ", ". ", ", ", "! ", "? ", "; ", ": ", "\n", "...", "。", "，", "！", "、", "—", "3.14", " e.g. ", " Mr. "]
)
PIECES = st.lists(st.one_of(WORDS, CJK, SEPARATORS), min_size=0, max_size=60)
# Anything at all, control characters, markdown and emoji included.
ANY_TEXT = st.text(max_size=300)


def _reply(pieces: list[str]) -> str:
    return "".join(pieces)


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in zip(points, points[1:])]


def _phrases(deltas: list[str], chunker: PhraseChunker | None = None) -> list[str]:
    chunker = chunker or PhraseChunker()
    out: list[str] = []
    for delta in deltas:
        out += chunker.push(delta)
    return out + chunker.flush()


def _spoken_chars(text: str) -> str:
    """Letters and digits in order: what TTS must say of a text."""
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


@settings(max_examples=300, deadline=None)
@given(PIECES, st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_phrases_do_not_depend_on_how_the_reply_was_split_into_deltas(pieces, cuts):
    text = _reply(pieces)
    assert _phrases(_split(text, cuts)) == _phrases([text])


@settings(max_examples=150, deadline=None)
@given(ANY_TEXT, st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_any_text_gives_the_same_phrases_however_it_is_split(text, cuts):
    assert _phrases(_split(text, cuts)) == _phrases([text])


@settings(max_examples=300, deadline=None)
@given(PIECES)
def test_no_letter_or_digit_is_lost_or_reordered(pieces):
    text = _reply(pieces)
    assert _spoken_chars("".join(_phrases([text]))) == _spoken_chars(text)


@settings(max_examples=200, deadline=None)
@given(ANY_TEXT)
def test_every_phrase_is_one_clean_speakable_line(text):
    for phrase in _phrases([text]):
        assert phrase == phrase.strip() and phrase
        assert "  " not in phrase
        assert any(unicodedata.category(ch)[0] in "LN" for ch in phrase), phrase
        assert not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in phrase), phrase


@settings(max_examples=100, deadline=None)
@given(PIECES, PIECES)
def test_flush_leaves_nothing_behind_for_the_next_reply(first, second):
    chunker = PhraseChunker()
    _phrases([_reply(first)], chunker)
    assert _phrases([_reply(second)], chunker) == _phrases([_reply(second)])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(WORDS, CJK, SEPARATORS), max_size=20))
def test_joined_phrases_keep_every_character_and_add_only_single_spaces(parts):
    joined = join_phrases(parts)
    assert joined.replace(" ", "") == "".join(parts).replace(" ", "").replace("\n", "")
    assert "  " not in joined and joined == joined.strip()


@given(st.lists(CJK, max_size=10), st.lists(WORDS, max_size=10))
def test_chinese_and_japanese_join_without_spaces_latin_words_with_one(cjk, words):
    assert join_phrases(cjk) == "".join(cjk)
    assert join_phrases(words) == " ".join(words)
