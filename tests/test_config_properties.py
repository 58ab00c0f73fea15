"""Property-based tests of the config loader: whatever a YAML file holds, loading gives a
Config or a ConfigError naming where (a dotted path, or the file), with every value in
the message bounded; never another exception."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sisyphus.config import Config, load_config
from sisyphus.errors import ConfigError

MAX_LINE_CHARS = 400
SECTIONS = [f.name for f in dataclasses.fields(Config) if f.name != "base_dir"]
KEYS = {
    f.name: [g.name for g in dataclasses.fields(f.type)] if dataclasses.is_dataclass(f.type) else []
    for f in dataclasses.fields(Config)
}
# "<dotted path>: <problem>"; the last part is a plain key or a bounded repr of an odd one.
FIELD = re.compile(r"^(?:(?:%s)\.)?(?P<key>.{1,62}?): (?:unknown key|must |secrets are not read)" % "|".join(SECTIONS))

scalars = (
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10**200), max_value=10**200)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30)
    | st.sampled_from(["auto", "cpu", "cuda:1", "bf16", "swap", "", " ", "http://localhost:1/v1", "null", "yes"])
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
known_keys = st.sampled_from(SECTIONS) | st.text(max_size=10)


@st.composite
def documents(draw) -> object:
    """Mostly well-shaped configs with odd values, sometimes anything at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(values)
    doc: dict = {}
    for section in draw(st.lists(known_keys, max_size=5)):
        keys = KEYS.get(section) or []
        if keys and draw(st.booleans()):
            doc[section] = {k: draw(values) for k in draw(st.lists(st.sampled_from(keys) | st.text(max_size=6), max_size=4))}
        else:
            doc[section] = draw(values)
    return doc


# YAML-ish fragments: anchors, aliases, flow and block collections, tags, quotes, tabs.
TOKENS = ["a:", "llm:", "vad:", "  ", "\n", "- ", "&x ", "*x", "&y ", "*y", "[", "]", "{", "}", ", ", ": ",
          "'", '"', "\t", "1", "1.5", "-.inf", ".nan", "2024-13-45", "!!binary ", "!!python/object ", "<<: ",
          "? ", "|", ">", "#", "%YAML 1.1\n", "---\n", "...\n", "\x07", "é", "\ufeff", "99999999999999999999"]
fragments = st.lists(st.sampled_from(TOKENS) | st.text(max_size=3), max_size=6).map("".join)
lines = st.tuples(
    st.sampled_from(["", "  ", "    ", "- ", "\t"]), st.sampled_from(["", "a: ", "llm: ", "model: ", "seed: ", "? "]), fragments
).map("".join)
yaml_texts = st.lists(lines, max_size=12).map("\n".join) | st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)


def check(path: Path) -> None:
    try:
        config = load_config(path, env={})
    except ConfigError as exc:
        text = exc.one_line()
        assert len(text) < 40 * MAX_LINE_CHARS
        if exc.message.startswith("invalid configuration: "):
            fields = exc.message.removeprefix("invalid configuration: ").split("; ")
            assert len(fields) <= 21
            for field in fields:
                assert FIELD.match(field) or re.fullmatch(r"\.\.\. and \d+ more", field), field
                assert len(field) < MAX_LINE_CHARS, field
        else:
            assert str(path) in exc.message
            assert len(text) < MAX_LINE_CHARS + len(str(path)), text
    else:
        assert isinstance(config, Config)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents())
def test_any_value_loads_or_names_its_dotted_path(tmp_path, doc):
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    check(path)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=yaml_texts)
def test_any_text_loads_or_is_one_config_error(tmp_path, text):
    path = tmp_path / "models.yaml"
    path.write_text(text, encoding="utf-8")
    check(path)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_any_bytes_load_or_are_one_config_error(tmp_path, data):
    path = tmp_path / "models.yaml"
    path.write_bytes(data)
    check(path)
