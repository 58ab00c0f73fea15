"""The key-by-key line editor used under the dashboard, fed the bytes a terminal sends."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from sisyphus.ui.dashboard import Dashboard
from sisyphus.ui.events import ConfigSummary, InputLine, VoiceChanged
from sisyphus.ui.typing import MAX_LINE_CHARS, LineBuffer


def test_editing_keys():
    buffer = LineBuffer()
    assert buffer.feed("hel\x1b[Dlo\x7f\x7fp me\r") == ["help me"]  # an arrow key is ignored
    assert buffer.feed("a b c\x17\x17x\x15yo\x1bOAz\n") == ["yoz"]  # Ctrl-W twice, Ctrl-U, SS3 arrow
    assert buffer.feed("   \r\r") == []  # blank lines are not sent
    assert buffer.feed("caf\u00e9 \u4f60\u597d\r") == ["caf\u00e9 \u4f60\u597d"]
    assert buffer.feed("x\x04") == [] and not buffer.ended  # Ctrl-D on a non-empty line: nothing
    assert buffer.feed("\x15\x04") == [] and buffer.ended


keys = st.lists(
    st.sampled_from(["a", "b", " ", "\u00e9", "\r", "\n", "\x7f", "\b", "\x15", "\x17", "\x1b", "[", "O", "A", "~", "\x01", "\t"]),
    max_size=200,
).map("".join)


@given(keys=keys)
def test_any_keys_give_printable_single_lines(keys):
    buffer = LineBuffer()
    for line in buffer.feed(keys):
        assert line.strip() and line.isprintable() and "\n" not in line and len(line) <= MAX_LINE_CHARS
    assert buffer.text.isprintable() or buffer.text == ""


def test_the_dashboard_shows_the_typed_line_and_the_voice_in_use():
    console = Console(record=True, width=100, height=40, force_terminal=True, file=io.StringIO())
    dash = Dashboard(console=console)
    for event in (ConfigSummary(("voice: vivian, language: english",)), VoiceChanged("vivian"), InputLine("hel")):
        dash.handle(event)
    dash.handle(VoiceChanged("ryan"))
    console.print(dash.render())
    screen = console.export_text()
    assert "type › hel▏" in screen
    assert "voice: ryan, language: english" in screen and "vivian" not in screen
    dash.handle(InputLine(None))
    console.print(dash.render())
    assert "type ›" not in console.export_text()
