"""The README a user reads against the program they run: links a clone has, the messages
the troubleshooting table quotes, the commands and variables that exist."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
SOURCE = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "sisyphus").rglob("*.py"))


def _message_patterns() -> list[re.Pattern[str]]:
    """Every string the program can print, as a regex: f-string fields and %-formats match anything."""
    patterns = []
    for path in (REPO / "sisyphus").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.JoinedStr):
                literal = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
                if len(literal.strip()) >= 12:  # f"{a}: {b}" would match anything
                    parts = [re.escape(v.value) if isinstance(v, ast.Constant) else "(.+?)" for v in node.values]
                    patterns.append("".join(parts))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) > 8:
                patterns.append(re.sub(r"%[-\d.]*[sdfr]", "(.+?)", re.escape(node.value).replace("%%", "%")))
    return [re.compile(p, re.S) for p in patterns]


PATTERNS = _message_patterns()


def printed_by_the_program(text: str) -> bool:
    concrete = text.replace("...", "X").replace("…", "X")
    return any(p.fullmatch(concrete) for p in PATTERNS)


def section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start:] if end < 0 else README[start:end]


def test_no_links_outside_the_repository():
    assert "../shared" not in README
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if not target.startswith(("http://", "https://")):
            assert (REPO / target).exists(), target
    for path in re.findall(r"`((?:benchmarks|voices|tests|sisyphus)/[\w./-]+)`", README):
        assert (REPO / path).exists(), path


def test_troubleshooting_quotes_the_messages_the_program_prints():
    quoted = re.findall(r"^\| `((?:error|warning): [^`]+)`", section("Troubleshooting"), re.M)
    assert len(quoted) >= 8
    assert not printed_by_the_program("no input device")  # an old, wrong quote
    for message in quoted:
        text = message.split(": ", 1)[1]
        # "message. hint": each sentence is one printed string (or a whole one_line()).
        assert printed_by_the_program(text) or all(printed_by_the_program(p) for p in text.split(". ")), message


def test_documented_commands_exist_and_env_variables_are_listed():
    for command in (["models", "list"], ["bench"], ["voices", "list"], ["devices"], ["doctor"]):
        done = subprocess.run([sys.executable, "-m", "sisyphus.cli", *command, "--help"], cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert f"sisyphus {' '.join(command)}" in README
    assert "--size tiny" in README and "tiny" in subprocess.run(
        [sys.executable, "-m", "sisyphus.cli", "bench", "--help"], cwd=REPO, capture_output=True, text=True,
        timeout=120, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    ).stdout
    assert "about 10 GB of memory" in README and "tts.max_seconds_per_phrase" in section("Performance")
    read = set(re.findall(r"\"(SISYPHUS_[A-Z_]+)\"", SOURCE))
    listed = set(re.findall(r"^([A-Z_]+)=", (REPO / ".env.example").read_text(encoding="utf-8"), re.M))
    assert read <= listed, read - listed
    assert "## Windows: what is verified and what is not" in README
