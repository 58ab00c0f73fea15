"""Short English speech clips shipped with the package, so `sisyphus bench` needs no input.

The clips were spoken by espeak-ng (voice en-us, 160 words per minute) and converted with
sox to 16 kHz mono 16-bit WAV; each holds one sentence of about 2.3 s. They are machine
speech, not a recording of a person: good enough for the VAD to find and for ASR and TTS
to spend their real compute on, not a test of recognition quality. Their order is the
order of the scripted conversation the pipeline benchmark plays.

To regenerate one (the texts are in CLIP_TEXTS)::

    espeak-ng -v en-us -s 160 -w /tmp/x.wav "What time is it in Paris right now?"
    sox /tmp/x.wav -r 16000 -c 1 -b 16 -e signed-integer 01_paris.wav
"""

from __future__ import annotations

from pathlib import Path

from sisyphus.errors import AudioInputError

CLIPS_DIR = Path(__file__).resolve().parent

# File name -> the sentence it holds, in conversation order.
CLIP_TEXTS: dict[str, str] = {
    "01_paris.wav": "What time is it in Paris right now?",
    "02_joke.wav": "Tell me a short joke about cats.",
    "03_weather.wav": "How is the weather going to be today?",
    "04_thanks.wav": "Thank you, that is all for now.",
}


def clip_paths() -> list[Path]:
    """The clips in conversation order; a missing file means a broken install, so it raises."""
    paths = [CLIPS_DIR / name for name in CLIP_TEXTS]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise AudioInputError(
            f"bench clips missing from {CLIPS_DIR}: {', '.join(missing)}",
            "reinstall sisyphus (the clips ship as package data)",
        )
    return paths


def clip_texts() -> dict[str, str]:
    """File name -> spoken sentence (a copy: callers may not change the module's table)."""
    return dict(CLIP_TEXTS)
