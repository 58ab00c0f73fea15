"""Config loading: defaults, precedence, and one message per bad field."""

from pathlib import Path

import pytest

from sisyphus.config import Config, load_config
from sisyphus.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(text)
    return path


def test_repo_models_yaml_equals_the_defaults():
    loaded = load_config(REPO / "models.yaml", env={})
    defaults = Config(base_dir=str(REPO))
    assert loaded == defaults


def test_precedence_file_then_env_then_flags(tmp_path):
    path = write(tmp_path, "llm:\n  model: from-file\n  temperature: 0.1\nvad:\n  min_silence_ms: 500\n")
    env = {"SISYPHUS_LLM_MODEL": "from-env", "OPENAI_API_KEY": "sk-test", "SISYPHUS_MEMORY": "swap"}
    config = load_config(path, env=env, overrides={"llm.model": "from-flag", "memory": None})
    assert config.llm.model == "from-flag"
    assert config.llm.temperature == 0.1
    assert config.llm.api_key == "sk-test"
    assert config.memory == "swap"
    assert config.vad.min_silence_ms == 500
    assert config.base_dir == str(tmp_path)


def test_env_strings_are_parsed_to_the_declared_types(tmp_path):
    config = load_config(None, env={"SISYPHUS_INPUT_DEVICE": "3"}, overrides={"barge_in": "false", "tts.seed": "7"})
    assert config.audio.input_device == "3"
    assert config.barge_in is False
    assert config.tts.seed == 7


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("vad:\n  threshold: 1.5\n", "vad.threshold: must be in (0, 1), got 1.5"),
        ("vad:\n  treshold: 0.3\n", "vad.treshold: unknown key"),
        ("colour: red\n", "colour: unknown key"),
        ("memory: lazy\n", "memory: must be one of 'resident', 'lazy-tts', 'swap', got 'lazy'"),
        ("device: gpu\n", "device: must be auto, cpu, cuda or cuda:N, got 'gpu'"),
        ("llm:\n  max_retries: two\n", "llm.max_retries: must be an integer, got 'two'"),
        ("barge_in: maybe\n", "barge_in: must be true or false, got 'maybe'"),
        ("vad: 3\n", "vad: must be a mapping, got 3"),
        ("llm:\n  api_key: sk-123\n", "llm.api_key: secrets are not read from YAML"),
    ],
)
def test_bad_values_name_the_path_the_value_and_what_is_allowed(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    assert message in info.value.message
    assert str(tmp_path / "models.yaml") in info.value.hint


def test_every_bad_field_is_reported_at_once(tmp_path):
    path = write(tmp_path, "vad:\n  threshold: 0\n  min_silence_ms: 5\nllm:\n  temperature: 9\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    problems = info.value.message.removeprefix("invalid configuration: ").split("; ")
    assert sorted(p.split(":")[0] for p in problems) == ["llm.temperature", "vad.min_silence_ms", "vad.threshold"]


def test_broken_yaml_and_missing_file_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML at line 3"):
        load_config(write(tmp_path, "vad:\n  threshold: [0.5\n"), env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml", env={})
