"""Config keys for open speakers: echo cancellation, the early pause and the backchannel list."""

from __future__ import annotations

import pytest

from sisyphus.config import BACKCHANNELS, load_config
from sisyphus.errors import ConfigError


def _write(tmp_path, text):
    path = tmp_path / "models.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_cancel_echo_whenever_a_sound_device_is_used_and_know_common_backchannels():
    config = load_config(None, env={})
    assert (config.audio.echo_cancellation, config.audio.noise_suppression, config.audio.high_pass_filter) == ("auto", True, True)
    assert config.vad.pause_after_ms == 96
    assert config.backchannel.max_speech_ms == 1500 and config.backchannel.words == BACKCHANNELS
    assert {"mm-hm", "yeah", "okay", "嗯", "对"} <= set(BACKCHANNELS)


def test_yaml_on_and_off_mean_what_they_say_and_words_are_a_list(tmp_path):
    path = _write(tmp_path, "audio:\n  echo_cancellation: off\nbackchannel:\n  words: [jawohl, genau]\n  max_speech_ms: 900\n")
    config = load_config(path, env={})
    assert config.audio.echo_cancellation == "off"  # YAML 1.1 reads a bare off as false
    assert config.backchannel.words == ("jawohl", "genau") and config.backchannel.max_speech_ms == 900
    assert load_config(_write(tmp_path, "audio:\n  echo_cancellation: on\n"), env={}).audio.echo_cancellation == "on"


def test_the_environment_sets_the_mode():
    assert load_config(None, env={"SISYPHUS_ECHO_CANCELLATION": "off"}).audio.echo_cancellation == "off"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("audio:\n  echo_cancellation: sometimes\n", "audio.echo_cancellation: must be one of 'auto', 'on', 'off', got 'sometimes'"),
        ("backchannel:\n  words: [yeah, 3]\n", "backchannel.words: must be a list of non-empty strings, got ['yeah', 3]"),
        ("backchannel:\n  max_speech_ms: 50\n", "backchannel.max_speech_ms: must be in [100, 10000], got 50"),
        ("vad:\n  pause_after_ms: 10\n", "vad.pause_after_ms: must be in [32, 5000], got 10"),
    ],
)
def test_bad_values_name_the_key_the_value_and_what_is_allowed(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text), env={})
    assert message in caught.value.message
