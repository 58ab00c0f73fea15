"""Print the requirements of a compatibility env: pyproject's dependencies and test extra, with
torch and transformers pinned to the lower bounds pyproject states (or to `name==version`
arguments), one per line for pip.

The lower bounds are read from pyproject.toml itself, so the oldest env tests exactly what
the package admits; a bound without three version parts ("torch>=2.5") is refused, since
pip would then pick a patch release nobody named.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
PINNED = ("torch", "transformers")


def declared() -> list[str]:
    """The `dependencies` and `test` extra entries of pyproject.toml (a small, fixed layout)."""
    text = re.sub(r"#[^\n]*", "", PYPROJECT.read_text(encoding="utf-8"))  # no quotes in comments
    found = []
    for block in re.findall(r"^(?:dependencies|test)\s*=\s*\[(.*?)\]", text, flags=re.S | re.M):
        found += re.findall(r'"([^"]+)"', block)
    return found


def floor(requirement: str) -> str:
    match = re.search(r">=\s*(\d+\.\d+\.\d+)\b", requirement)
    if not match:
        raise SystemExit(f"pyproject.toml: {requirement!r} needs a lower bound of three parts (>=X.Y.Z)")
    return match.group(1)


def main(overrides: list[str]) -> None:
    pins = dict(item.split("==", 1) for item in overrides)
    for requirement in declared():
        name = re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0]
        if name in PINNED:
            print(f"{name}=={pins.get(name) or floor(requirement)}")
        else:
            print(requirement)


if __name__ == "__main__":
    main(sys.argv[1:])
