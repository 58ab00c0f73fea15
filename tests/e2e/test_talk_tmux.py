"""`sisyphus talk --text` with the live dashboard, in a real terminal: tmux.

tmux runs the real CLI in a pseudo-terminal of 100x45; the test types with `send-keys`
and reads the screen with `capture-pane`, as a person would see it. What it checks: the
line being typed is shown inside the dashboard; Enter leaves no stray border and never
pushes the dashboard down; `/voice` is confirmed and every place that names the voice
follows; a wrong command says what the commands are; after `/quit` the terminal has its
echo and line editing back.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import pytest

from sisyphus.bench.llm_server import Behavior, OpenAITestServer
from tests.e2e.harness import REPO, talk_env, write_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (tests/run.sh installs it)"),
]

WIDTH, HEIGHT = 100, 45
HEADER = "╭─ Sisyphus "


class Terminal:
    """One tmux server of our own (its own socket) running one command in one pane."""

    def __init__(self, command: str, env: dict[str, str], tmp_path) -> None:
        self.socket = f"sisyphus-test-{uuid.uuid4().hex[:8]}"
        conf = tmp_path / "tmux.conf"
        conf.write_text("set -g remain-on-exit on\nset -g status off\n")
        self._tmux("-f", str(conf), "new-session", "-d", "-s", "t", "-x", str(WIDTH), "-y", str(HEIGHT), command, env=env)

    def _tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, env=env, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def screen(self) -> list[str]:
        return self._tmux("capture-pane", "-p", "-t", "t").splitlines()

    def type(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "t", *keys)

    def wait_for(self, predicate: Callable[[list[str]], bool], what: str, timeout_s: float = 180) -> list[str]:
        """Poll the screen another process draws, until `predicate` holds (bounded)."""
        deadline = time.monotonic() + timeout_s
        screen: list[str] = []
        while time.monotonic() < deadline:
            screen = self.screen()
            if predicate(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"the screen never showed {what}:\n" + "\n".join(screen))

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)


def text_of(screen: list[str]) -> str:
    return "\n".join(screen)


def dashboard_intact(screen: list[str]) -> bool:
    """The dashboard's top border on the first row and nowhere else."""
    return screen[0].startswith(HEADER) and sum(line.count(HEADER) for line in screen) == 1


@pytest.fixture()
def terminal(tmp_path, tiny_glmasr_folder, tiny_tts_custom_folder, tiny_tts_base_folder):
    with OpenAITestServer(models=("test-model",)) as server:
        server.script(Behavior(reply="Hi there."), Behavior(reply="Bye now."))
        config = write_config(
            tmp_path, asr=tiny_glmasr_folder, tts_custom=tiny_tts_custom_folder, tts_base=tiny_tts_base_folder,
            llm_url=server.base_url,
        )
        talk = [sys.executable, "-m", "sisyphus.cli", "talk", "--config", str(config), "--text",
                "--output", str(tmp_path / "out.wav")]  # fmt: skip
        # After the session: its exit code and the terminal's echo/icanon flags, on screen.
        command = (
            f"cd {shlex.quote(str(REPO))} && {shlex.join(talk)}; echo EXIT=$?; "
            "stty -a | tr ' ;' '\\n\\n' | grep -x -e echo -e -echo -e icanon -e -icanon"
        )
        env = talk_env(tmp_path)
        env.update(TERM="xterm-256color", COLUMNS=str(WIDTH), LINES=str(HEIGHT))
        term = Terminal(command, env, tmp_path)
        try:
            yield term
        finally:
            term.close()


def test_typing_under_the_dashboard(terminal):
    terminal.wait_for(lambda s: "ready in" in text_of(s), "the session ready")
    terminal.type("hello")
    screen = terminal.wait_for(lambda s: any(line.startswith("type › hello▏") for line in s), "the typed line")
    assert dashboard_intact(screen)

    terminal.type("Enter")
    screen = terminal.wait_for(lambda s: "Hi there." in text_of(s), "the reply")
    assert any(line.startswith("│ you      hello") for line in screen), text_of(screen)
    assert any(line.startswith("│ sisyphus Hi there.") for line in screen)
    assert any(line.startswith("type › ▏") for line in screen)  # the input line is empty again
    assert dashboard_intact(screen)

    terminal.type("Enter", "Enter", "Enter")  # empty lines: nothing happens, nothing moves
    terminal.type("/voice ryan", "Enter")
    screen = terminal.wait_for(lambda s: "voice switched to ryan" in text_of(s), "the voice switch confirmed")
    assert "voice ryan" in screen[1], screen[1]
    assert any(line.startswith("│ voice: ryan, language: english") for line in screen), text_of(screen)
    assert "voice: vivian" not in text_of(screen)
    assert dashboard_intact(screen)

    terminal.type("/frobnicate", "Enter")
    screen = terminal.wait_for(lambda s: "unknown command '/frobnicate'" in text_of(s), "the unknown command")
    assert "commands: /voice NAME, /voices, /quit" in text_of(screen)
    assert dashboard_intact(screen)

    terminal.type("/quit", "Enter")
    screen = terminal.wait_for(lambda s: any(line.startswith("EXIT=") for line in s), "the end of the session")
    end = text_of(screen)
    assert "EXIT=0" in end and "session quit: 1 turn(s)" in end
    after = screen[[line.startswith("EXIT=") for line in screen].index(True) + 1:]
    assert {"echo", "icanon"} <= {line.strip() for line in after}, after  # the terminal is given back
    assert "type ›" not in end  # typing is over: the input line is gone from the last frame
