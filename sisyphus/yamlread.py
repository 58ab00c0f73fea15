"""Reading a YAML file a person wrote (models.yaml, voice.yaml) without trusting its size.

A few hundred bytes of YAML can name one list through aliases a billion times: loading
shares the nodes, but anything that walks or prints the value then pays for every copy.
So the file's size, its nesting and the number of values it expands to are bounded before
anything is built, and every value shown in a message goes through `preview`, which never
formats more than a short prefix. Bytes that are not UTF-8 (or UTF-16 with a BOM, what
PowerShell's `>` writes) and numbers too long to convert are one-line errors too.
"""

from __future__ import annotations

import codecs
import reprlib
from pathlib import Path
from typing import Any

import yaml

from sisyphus.errors import SisyphusError

# A config is a few KB; these leave room for comments and long prompts.
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 32
# Values after alias expansion: a config has about fifty.
MAX_VALUES = 10_000
PREVIEW_CHARS = 60


class _Repr(reprlib.Repr):
    """reprlib's bounded repr; ints too long for repr() are described, not printed."""

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 128:
            return f"<an integer of {x.bit_length()} bits>"
        return super().repr_int(x, level)


_REPR = _Repr()
_REPR.maxlevel = 3
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = _REPR.maxset = 4
_REPR.maxstring = _REPR.maxother = 48
_REPR.maxlong = 40


def preview(value: Any, max_chars: int = PREVIEW_CHARS) -> str:
    """A short repr of any loaded value: cost and length bounded whatever its size."""
    try:
        text = _REPR.repr(value)
    except Exception:  # a value whose repr fails still needs a message
        text = f"<{type(value).__name__}>"
    text = text.replace("\n", " ").replace("\r", " ")
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def short_text(text: str, max_chars: int = 80) -> str:
    """One line of at most `max_chars` characters, for text quoted in a message."""
    line = " ".join(str(text)[: max_chars * 4].split())
    return line if len(line) <= max_chars else line[: max_chars - 1] + "…"


def read_yaml_file(path: Path, error: type[SisyphusError], hint: str) -> Any:
    """The parsed document, or `error(message, hint)` naming what is wrong with the file.

    `hint` says how to fix a file that does not parse; size and encoding problems bring
    their own hints.
    """
    try:
        with path.open("rb") as file:  # bounded read: a FIFO or /dev/zero must not hang us
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}", "check that it exists and is readable") from exc
    if len(data) > MAX_FILE_BYTES:
        raise error(
            f"{path} is larger than {MAX_FILE_BYTES >> 20} MB; a YAML file here is a few KB", "is it the right file?"
        )
    return parse_yaml(decode_text(data, path, error), str(path), error, hint)


def decode_text(data: bytes, path: Path | str, error: type[SisyphusError]) -> str:
    """UTF-8 (a BOM allowed), or UTF-16 with its BOM; anything else names the first bad byte."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise error(f"{path} starts like UTF-16 but is not valid UTF-16", "save it as UTF-8") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise error(
            f"{path} is not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line}, column {column}",
            "save it as UTF-8 (most editors offer this under 'Save as' or 'Encoding')",
        ) from exc


def parse_yaml(text: str, where: str, error: type[SisyphusError], hint: str) -> Any:
    """yaml.safe_load with the nesting and the expanded size bounded first."""
    try:
        _check_nesting(text, where, error)
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _check_expansion(node, where, error)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or ""
        detail = f": {short_text(problem)}" if problem else ""
        raise error(f"{where} is not valid YAML{at}{detail}", hint) from exc
    except (ValueError, OverflowError, TypeError) as exc:
        # Constructors turn text into ints and dates: 2024-13-45, 10**5000 digits.
        raise error(f"{where} holds a value YAML cannot convert: {short_text(str(exc))}", hint) from exc
    except RecursionError as exc:
        raise error(f"{where} is nested too deeply", hint) from exc


def _check_nesting(text: str, where: str, error: type[SisyphusError]) -> None:
    """Parser events are produced without recursion: count the depth before composing."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise error(
                    f"{where} nests lists or mappings more than {MAX_DEPTH} deep (line {line})",
                    "a config is two levels deep; see models.yaml in the repository",
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _check_expansion(root: yaml.Node, where: str, error: type[SisyphusError]) -> None:
    """How many values the document holds once every alias is expanded, without expanding.

    Aliases make the node graph a DAG (or a cycle): each node's expanded size is one
    plus its children's, computed once per node, iteratively.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            total = 1 + sum(sizes[id(child)] for child in _children(node))
            sizes[key] = min(total, MAX_VALUES + 1)
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise error(f"{where} holds a value that contains itself (a recursive alias)", "remove the alias")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    if sizes[id(root)] > MAX_VALUES:
        raise error(
            f"{where} expands to more than {MAX_VALUES} values through YAML aliases",
            "write the values out; a config needs no aliases",
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
