"""PhraseChunker: where replies are cut and what is left to speak, however deltas are split."""

from __future__ import annotations

import random

import pytest

from sisyphus.llm.chunker import PhraseChunker, clean_for_speech, is_speakable

CASES: list[tuple[str, list[str]]] = [
    # sentence ends
    ("Hello there! How are you today? I am fine.", ["Hello there!", "How are you today?", "I am fine."]),
    ("Well... maybe. Or maybe not!? Who knows.", ["Well...", "maybe.", "Or maybe not!?", "Who knows."]),
    ('He said "stop." Then he left.', ['He said "stop."', "Then he left."]),
    ("Version 2.0 is out. Try it!", ["Version 2.0 is out.", "Try it!"]),
    ("The answer is 42", ["The answer is 42"]),
    # clause ends only once the phrase is long enough
    (
        "Sure, I can help. First, open the settings, then choose the audio tab, and finally pick your microphone.",
        ["Sure, I can help.", "First, open the settings, then choose the audio tab,", "and finally pick your microphone."],
    ),
    (
        "I love Python—it is simple, readable and powerful—and I use it daily for all kinds of work.",
        ["I love Python—", "it is simple, readable and powerful—", "and I use it daily for all kinds of work."],
    ),
    # numbers, abbreviations, initials, URLs are not ends
    ("Pi is about 3.14159, and e is 2.718. That's it.", ["Pi is about 3.14159,", "and e is 2.718.", "That's it."]),
    (
        "It is 12:30, and the total is 1,000,000 dollars; that's a lot.",
        ["It is 12:30, and the total is 1,000,000 dollars;", "that's a lot."],
    ),
    (
        "Mr. Smith and Dr. Jones met Prof. Lee, e.g. at 9 a.m. in the U.S. office. They talked.",
        ["Mr. Smith and Dr. Jones met Prof. Lee,", "e.g. at 9 a.m. in the U.S. office.", "They talked."],
    ),
    ("J. K. Rowling wrote it. Really.", ["J. K. Rowling wrote it.", "Really."]),
    (
        "See https://example.com/docs?page=2, or visit example.org. Bye!",
        ["See https://example.com/docs?page=2,", "or visit example.org. Bye!"],
    ),
    # Chinese punctuation, no spaces
    ("你好！今天天气怎么样？我觉得不错。", ["你好！", "今天天气怎么样？", "我觉得不错。"]),
    (
        "我们先去超市买一些水果和蔬菜，然后回家做饭，最后一起看电影。",
        ["我们先去超市买一些水果和蔬菜，", "然后回家做饭，最后一起看电影。"],
    ),
    ("第一点：准备材料；第二点：开始制作。", ["第一点：准备材料；", "第二点：开始制作。"]),
    ("好的，我明白了……让我想想。", ["好的，我明白了……", "让我想想。"]),
    ("OK.好的。Sisyphus是一个语音助手。", ["OK.", "好的。", "Sisyphus是一个语音助手。"]),
    # markdown, code and emoji are not read aloud
    (
        "## Steps\n\n1. Open the **settings** menu.\n2. Click `Save`.\n- Done!\n",
        ["Steps", "1. Open the settings menu.", "2. Click Save.", "Done!"],
    ),
    ("Great job! 🎉🎉 You did it 👍🏽. 🚀", ["Great job!", "You did it."]),
    ("🎉🎉🎉", []),
    ("**Note:** *this* is _important_.", ["Note: this is important."]),
    ("Here is code:\n```python\nx = 1. y = 2\nprint(x)\n```\nThat prints one.", ["Here is code:", "That prints one."]),
    ("Read [the docs](https://docs.example.com) for more. ![logo](a.png)", ["Read the docs for more."]),
    ("> Quoted wisdom here.\n\n* star bullet\n+ plus bullet", ["Quoted wisdom here.", "star bullet", "plus bullet"]),
    (
        "<think>\nThe user greets me. I should answer, briefly.\n</think>\n\nHi! Nice to meet you.",
        ["Hi!", "Nice to meet you."],
    ),
    ("<think>short</think>Sure. It costs $3.50. Or 4.5%.", ["Sure.", "It costs $3.50.", "Or 4.5%."]),
    ("...", []),
    ("", []),
]


def chunk_all(text: str, sizes: list[int], chunker: PhraseChunker | None = None) -> list[str]:
    """Feed `text` in deltas of the given sizes (cycled) and collect every phrase."""
    chunker = chunker or PhraseChunker()
    phrases: list[str] = []
    start, k = 0, 0
    while start < len(text):
        size = sizes[k % len(sizes)]
        phrases += chunker.push(text[start : start + size])
        start, k = start + size, k + 1
    return phrases + chunker.flush()


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:30] for c in CASES])
def test_phrases_whole_text_at_once(text: str, expected: list[str]) -> None:
    assert chunk_all(text, [max(1, len(text))]) == expected


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:30] for c in CASES])
def test_phrases_do_not_depend_on_delta_splits(text: str, expected: list[str]) -> None:
    rng = random.Random(1234)
    assert chunk_all(text, [1]) == expected
    for _ in range(25):
        sizes = [rng.randint(1, 9) for _ in range(40)]
        assert chunk_all(text, sizes) == expected, sizes


def test_all_cases_as_one_reply_do_not_depend_on_delta_splits() -> None:
    text = "\n".join(case for case, _ in CASES)
    reference = chunk_all(text, [len(text)])
    assert len(reference) >= 40
    rng = random.Random(99)
    for _ in range(20):
        sizes = [rng.randint(1, 12) for _ in range(200)]
        assert chunk_all(text, sizes) == reference


def test_a_phrase_is_released_as_soon_as_its_end_is_certain() -> None:
    chunker = PhraseChunker()
    assert chunker.push("Hello there!") == []  # "!" may still be followed by "?" or a quote
    assert chunker.push(" How") == ["Hello there!"]
    assert chunker.push(" much is 3.") == []  # "3." or "3.14"?
    assert chunker.push("14") == []
    assert chunker.push("? A lot") == ["How much is 3.14?"]
    assert chunker.flush() == ["A lot"]


def test_first_phrase_may_be_a_shorter_clause() -> None:
    text = "Okay, well, here is the thing, you see, it works. Right, so, this is the plan, you see, it works."
    assert chunk_all(text, [3]) == [
        "Okay, well, here is the thing,",  # 12 units suffice for the first phrase
        "you see, it works.",
        "Right, so, this is the plan, you see,",  # later clauses need 25
        "it works.",
    ]
    eager = PhraseChunker(first_min_clause_units=4, min_clause_units=25)
    assert chunk_all("Okay, well, here is the thing.", [5], eager) == ["Okay,", "well, here is the thing."]


def test_flush_resets_for_the_next_reply() -> None:
    chunker = PhraseChunker()
    assert chunk_all("First reply here. And more", [4], chunker) == ["First reply here.", "And more"]
    # The first-phrase rule applies again, and nothing of the last reply remains.
    assert chunk_all("Okay, well, here is the thing, yes.", [4], chunker) == [
        "Okay, well, here is the thing,",
        "yes.",
    ]


def test_a_long_run_without_punctuation_is_cut_at_word_boundaries() -> None:
    words = [f"w{i:03d}" for i in range(150)]
    text = " ".join(words)
    phrases = chunk_all(text, [7])
    assert len(phrases) == 4
    assert all(len(p) <= 200 for p in phrases)
    assert " ".join(phrases).split() == words  # no word was split


def test_a_long_cjk_run_is_cut_by_length() -> None:
    text = "中文" * 60
    phrases = chunk_all(text, [5])
    assert [len(p) for p in phrases] == [67, 53]  # 67 CJK chars reach 200 units
    assert "".join(phrases) == text


def test_code_block_across_many_deltas_is_skipped() -> None:
    text = "Run this:\n```bash\necho hi. Then, more code, lots of it.\nls -la\n```\nIt lists files."
    rng = random.Random(7)
    for _ in range(10):
        assert chunk_all(text, [rng.randint(1, 4) for _ in range(30)]) == ["Run this:", "It lists files."]


@pytest.mark.parametrize(
    ("raw", "spoken"),
    [
        ("**bold** and *italic* and `code`", "bold and italic and code"),
        ("# Title", "Title"),
        ("- item one", "item one"),
        ("snake_case stays", "snake_case stays"),
        ("Rain ☔ today ✨!", "Rain today!"),
        ("Flags 🇫🇷 and keycaps 1️⃣ go", "Flags and keycaps 1 go"),
        ("25°C and ©2024 stay", "25°C and ©2024 stay"),
        ("see [here](http://x.y) now", "see here now"),
    ],
)
def test_clean_for_speech(raw: str, spoken: str) -> None:
    assert clean_for_speech(raw) == spoken


def test_is_speakable() -> None:
    assert [is_speakable(t) for t in ["", "...", "—", "a", "7", "好", "!?"]] == [
        False, False, False, True, True, True, False
    ]
