"""Typed input under the live dashboard: keys read one by one, echoed inside the screen.

With the terminal in its usual (cooked, echoing) mode, what the user types is written
wherever the cursor is, and each Enter moves the cursor a line down: the dashboard was
then redrawn one line lower each time, leaving its top border behind, and the typed
text was never visible. While the dashboard runs, `TerminalLineEditor` switches echo and
line buffering off (Ctrl-C still interrupts), keeps the line being typed, and shows it
through `InputLine` events; Enter hands the line over. Backspace, Ctrl-U (clear), Ctrl-W
(delete a word) and Ctrl-D (end of input on an empty line) work; other control keys and
escape sequences (arrows) are ignored.

POSIX terminals use termios; Windows consoles use msvcrt (not tested: no Windows here).
Piped input and `--plain` never come here: they read whole lines as before.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from sisyphus.ui.events import InputLine

MAX_LINE_CHARS = 2000
ENTER = ("\r", "\n")
BACKSPACE = ("\x7f", "\b")
CTRL_C, CTRL_D, CTRL_U, CTRL_W, ESC = "\x03", "\x04", "\x15", "\x17", "\x1b"


class LineBuffer:
    """The line being typed; `feed` takes keys and returns the lines finished by Enter."""

    def __init__(self) -> None:
        self.text = ""
        self.ended = False  # Ctrl-D on an empty line
        self._escape = ""  # an escape sequence being skipped

    def feed(self, keys: str) -> list[str]:
        done: list[str] = []
        for key in keys:
            if self._escape:
                self._escape += key
                if _escape_done(self._escape):
                    self._escape = ""
                continue
            if key == ESC:
                self._escape = ESC
            elif key in ENTER:
                if self.text.strip():
                    done.append(self.text)
                self.text = ""
            elif key in BACKSPACE:
                self.text = self.text[:-1]
            elif key == CTRL_U:
                self.text = ""
            elif key == CTRL_W:
                self.text = self.text.rstrip()
                self.text = self.text[: self.text.rfind(" ") + 1] if " " in self.text else ""
            elif key == CTRL_D:
                if not self.text:
                    self.ended = True
                    break
            elif key.isprintable() and len(self.text) < MAX_LINE_CHARS:
                self.text += key
        return done


def _escape_done(sequence: str) -> bool:
    """ESC x is whole at x; SS3 (ESC O x) at x; CSI (ESC [ ... ) at a byte in @-~."""
    if len(sequence) == 2:
        return sequence[1] not in "[O"
    if sequence[1] == "O":
        return True
    return "@" <= sequence[-1] <= "~"


class TerminalLineEditor:
    """Reads the terminal key by key on the keyboard thread; shows the line in `show`."""

    def __init__(self, show: Callable[[object], None], stream: TextIO | None = None) -> None:
        self._show = show
        self._stream = stream or sys.stdin
        self._saved: Any = None
        self.buffer = LineBuffer()

    @staticmethod
    def usable(stream: TextIO | None = None) -> bool:
        """A real terminal on this platform (not a pipe, not a file)."""
        stream = stream or sys.stdin
        try:
            if not stream.isatty():
                return False
        except (AttributeError, ValueError):
            return False
        if os.name == "nt":
            return True
        try:
            import termios  # noqa: F401
        except ImportError:
            return False
        return True

    def __enter__(self) -> TerminalLineEditor:
        """Echo and line buffering off (ISIG stays on: Ctrl-C is still an interrupt)."""
        if os.name != "nt":
            import termios
            import tty

            fd = self._stream.fileno()
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd, termios.TCSANOW)
        self._show(InputLine(""))
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def restore(self) -> None:
        """Give the terminal back as it was; safe to call twice, from any thread."""
        saved, self._saved = self._saved, None
        self._show(InputLine(None))
        if saved is not None:
            import termios

            with contextlib.suppress(OSError, ValueError):
                termios.tcsetattr(self._stream.fileno(), termios.TCSADRAIN, saved)

    def lines(self) -> Iterator[str]:
        """Finished lines, until Ctrl-D on an empty line or the end of the terminal."""
        for keys in self._keys():
            for line in self.buffer.feed(keys):
                self._show(InputLine(""))
                yield line
            if self.buffer.ended:
                return
            self._show(InputLine(self.buffer.text))

    def _keys(self) -> Iterator[str]:
        if os.name == "nt":  # pragma: no cover - Windows only
            yield from _windows_keys()
            return
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        fd = self._stream.fileno()
        while True:
            try:
                data = os.read(fd, 1024)
            except OSError:
                return
            if not data:
                return
            yield decoder.decode(data)


def _windows_keys() -> Iterator[str]:  # pragma: no cover - Windows only
    import _thread
    import msvcrt

    while True:
        key = msvcrt.getwch()
        if key in ("\x00", "\xe0"):  # a function or arrow key: its second code follows
            msvcrt.getwch()
            continue
        if key == CTRL_C:
            _thread.interrupt_main()
            return
        if key == "\x1a":  # Ctrl-Z, Windows' end of input
            key = CTRL_D
        yield key
