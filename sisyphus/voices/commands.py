"""`sisyphus voices clone / list / delete / say`: thin commands over the voice library.

Everything cheap is checked before a model loads (the name, the options, the audio), so
a mistake costs a second, not a model load. Results go to stdout, progress and warnings
to stderr. Loading and running models goes through the same ModelSet `talk` uses.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer

from sisyphus.cli_support import handle_errors, read_config
from sisyphus.config import Config
from sisyphus.errors import ConfigError, ModelError, VoiceError
from sisyphus.voices.library import REFERENCE_RATE_HZ, Needs, VoiceInfo
from sisyphus.hub import model_folder
from sisyphus.runtime.remote import remote_endpoint
from sisyphus.voices.router import VoiceRouter

voices_app = typer.Typer(
    help="Clone voices, list them with the preset speakers, hear them, delete them.",
    no_args_is_help=True,
)

ConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="Config file (default: SISYPHUS_CONFIG, else ./models.yaml).", envvar="SISYPHUS_CONFIG"),
]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
DtypeOpt = Annotated[Optional[str], typer.Option("--dtype", help="auto, bf16, fp16 or fp32.")]
LanguageOpt = Annotated[Optional[str], typer.Option("--language", "-l", help="Language, or auto (default: voice.language).")]

CLONE_QUALITY_NOTE = (
    "no transcript: cloning from the speaker embedding only (x-vector), which sounds less "
    "like the speaker; pass --text or --transcribe for better quality"
)


def _say(text: str) -> None:
    typer.echo(text, err=True)


def _refuse_overwriting(output: Path | None, config_file: Path | None, cfg: Config) -> None:
    from sisyphus.audio.paths import refuse_overwriting
    from sisyphus.config import default_config_path, resolve_path

    library = resolve_path(cfg, cfg.voice.library)
    refuse_overwriting(output, {"the config file": config_file or default_config_path(), "the voice library": library})


def _models(cfg: Config, *, with_asr: bool = False) -> Any:
    from sisyphus.agent.models import ModelSet
    from sisyphus.runtime.device import pick_device, pick_dtype

    device = pick_device(cfg.device)
    return ModelSet(cfg, device=device, dtype=pick_dtype(device, cfg.dtype), notify=_say, with_asr=with_asr)


def _clean_text(text: str) -> str:
    """One line of printable text: a transcript goes into voice.yaml and the model's prompt."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


@voices_app.command("clone")
@handle_errors
def clone(
    name: Annotated[str, typer.Argument(help="Name of the new voice (letters, digits, '_', '-').")],
    audio: Annotated[Optional[Path], typer.Option("--audio", "-a", help="Recording of the voice (WAV, FLAC, OGG, MP3...).")] = None,
    record: Annotated[Optional[float], typer.Option("--record", help="Record this many seconds from the microphone instead.")] = None,
    text: Annotated[Optional[str], typer.Option("--text", "-t", help="What is said in the recording.")] = None,
    transcribe: Annotated[bool, typer.Option("--transcribe", help="Fill the transcript with GLM-ASR.")] = False,
    language: LanguageOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a voice of the same name.")] = False,
    config: ConfigOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
) -> None:
    """Clone a voice from 5-15 s of clear speech and store its clone prompt."""
    if (audio is None) == (record is None):
        raise ConfigError("pass exactly one of --audio FILE and --record SECONDS", "see `sisyphus voices clone --help`")
    if text is not None and transcribe:
        raise ConfigError("--text and --transcribe cannot be used together", "give the transcript or let GLM-ASR write it")
    if text is not None and not _clean_text(text):
        raise ConfigError("--text is empty", "pass what is said in the recording, or use --transcribe")
    cfg = read_config(config, {"device": device, "dtype": dtype, "voice.language": language})
    library = VoiceRouter.from_config(cfg, notify=_say).library
    library.check_new_name(name, force=force)
    lang = _check_model(cfg, "tts_base")
    samples, source, source_sha = _reference(cfg, audio, record)
    # Only now torch and Silero: every check above costs milliseconds.
    from sisyphus.voices.checks import check_reference, to_asr_rate

    checked = check_reference(samples, source)
    for warning in checked.warnings:
        _say(f"warning: {warning}")

    models = _models(cfg, with_asr=transcribe)
    transcript = _clean_text(text) if text is not None else None
    if transcribe:
        transcript = _clean_text(models.transcribe(to_asr_rate(checked.samples)))
        if not transcript:
            raise VoiceError(f"GLM-ASR heard no words in {source}", "pass the transcript with --text")
        _say(f"transcript: {transcript}")
    if transcript is None:
        _say(f"note: {CLONE_QUALITY_NOTE}")
    base = models.tts("tts_base")

    def write_prompt(path: Path) -> str:
        prompt = base.create_clone_prompt(
            checked.samples, REFERENCE_RATE_HZ, text=transcript, language=None if lang == "auto" else lang
        )
        prompt.save(path)
        return str(base.name)

    # A remote Base server clones from the reference on each request: only it and its text are kept.
    writer = None if getattr(base, "remote", False) else write_prompt
    info = library.add(name, checked.samples, transcript, lang, writer, force=force, source_sha256=source_sha)
    model = info.model or f"{base.name} at {base.endpoint.base_url} (reference kept; no local prompt)"
    typer.echo(
        f"cloned voice {info.name!r}: {info.audio_seconds:.1f} s, language {info.language}, "
        f"{'x-vector only' if info.x_vector_only else 'with transcript'}, model {model}"
    )
    typer.echo(f"try it: sisyphus voices say {info.name} \"Hello there.\"  ·  use it: sisyphus talk --voice {info.name}")


def _check_model(cfg: Config, key: Needs) -> str:
    """Before any audio or weights: the model is on disk, of the right kind, knows the language.

    Returns the language to use ("auto" or one of the model's languages).
    """
    from sisyphus.voices.languages import check_language

    if remote_endpoint(cfg, key) is not None:
        return cfg.voice.language  # the server checks its own model's kind and languages
    repo = getattr(cfg.models, key)
    path = model_folder(cfg, key) / "config.json"
    try:  # read here, not through the TTS runtime: no torch import for a refusal
        kind = json.loads(path.read_text(encoding="utf-8"))["tts_model_type"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path} is missing or malformed", f"run `sisyphus models pull {key.replace('_', '-')}` again") from exc
    wanted = "base" if key == "tts_base" else "custom_voice"
    if kind != wanted:
        raise ModelError(
            f"models.{key} ({repo}) is a {kind} model, not a {wanted} model",
            f"set models.{key} to a Qwen3-TTS ...-{'Base' if wanted == 'base' else 'CustomVoice'} repo or folder",
        )
    return check_language(cfg, (key,))


def _reference(cfg: Config, audio: Path | None, record: float | None) -> tuple[np.ndarray, str, str]:
    """The reference at 24 kHz from the file or the microphone, its name and its hash."""
    if audio is not None:
        from sisyphus.audio.source import load_audio

        samples = load_audio(audio, REFERENCE_RATE_HZ)
        return samples, audio.name, hashlib.sha256(audio.read_bytes()).hexdigest()
    from sisyphus.voices.record import record_reference

    samples = record_reference(cfg, float(record or 0), _say, lambda t: typer.echo(t, err=True, nl=False))
    return samples, "the recording", hashlib.sha256(samples.tobytes()).hexdigest()


def _row(info: VoiceInfo, cfg: Config, default: str, missing: dict[str, str]) -> dict[str, Any]:
    return {
        "name": info.name,
        "kind": info.kind,
        "language": info.language,
        "seconds": info.audio_seconds if info.kind == "cloned" else None,
        "created": info.created or None,
        "transcript": info.transcript,
        "x_vector_only": info.x_vector_only,
        "prompt_model": info.model or None,
        "needs": info.needs,
        "needs_model": getattr(cfg.models, info.needs),
        "model_downloaded": info.needs not in missing,
        "default": info.name == default,
        "path": str(info.path) if info.path else None,
    }


def _table(rows: list[dict[str, Any]]) -> list[str]:
    header = ["", "NAME", "KIND", "LANGUAGE", "LENGTH", "CREATED", "NEEDS"]
    cells = [
        [
            "*" if r["default"] else "",
            r["name"],
            r["kind"] + ("" if not r["x_vector_only"] else " (x-vector)"),
            r["language"],
            f"{r['seconds']:.1f} s" if r["seconds"] is not None else "-",
            (r["created"] or "-")[:16].replace("T", " "),
            f"{r['needs']}: {r['needs_model']}" + ("" if r["model_downloaded"] else " (not downloaded)"),
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *cells]]


def _missing_models(cfg: Config) -> dict[str, str]:
    """The TTS models not on disk (key → what to tell the user), checked without loading."""
    from sisyphus.errors import SisyphusError

    uses = {"tts_custom": "for the preset voices", "tts_base": "to clone voices and speak in them"}
    missing = {}
    for key, purpose in uses.items():
        if remote_endpoint(cfg, key) is not None:
            continue  # served by a server: nothing to download here
        try:
            model_folder(cfg, key)
        except SisyphusError as exc:
            missing[key] = f"{exc.message} (needed {purpose}): {exc.hint}"
    return missing


@voices_app.command("list")
@handle_errors
def list_voices(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Cloned voices and the CustomVoice preset speakers; * marks the default."""
    from sisyphus.voices.library import VoiceLibrary
    from sisyphus.voices.router import official_presets

    cfg = read_config(config)
    router = VoiceRouter.from_config(cfg, notify=_say)
    voices, problems = router.library.list()
    missing = _missing_models(cfg)
    if not router.presets_known and remote_endpoint(cfg, "tts_custom") is not None:
        problems.append(f"preset speakers unknown: the CustomVoice server {cfg.remote.tts_custom_url} "
                        "did not list them (see the warning above)")
    elif not router.presets_known:  # the model is not here: its speakers are the official ones
        voices += VoiceLibrary(router.library.folder, *official_presets()).presets()
    wanted = cfg.voice.default.casefold()
    default = next((v.name for v in voices if v.name == cfg.voice.default), None) or next(
        (v.name for v in voices if v.kind == "preset" and v.name.casefold() == wanted), cfg.voice.default
    )
    rows = [_row(v, cfg, default, missing) for v in voices]
    notes = [f"note: {text}" for text in missing.values()]
    if not any(r["default"] for r in rows):
        notes.append(f"warning: the default voice {cfg.voice.default!r} (voice.default) does not exist")
    if as_json:
        payload = {
            "default": default, "library": str(router.library.folder), "voices": rows, "problems": problems,
            "models_missing": sorted(missing),
        }
        typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        for line in _table(rows):
            typer.echo(line)
    for problem in problems:
        _say(f"warning: {problem}")
    for note in notes:
        _say(note)


@voices_app.command("delete")
@handle_errors
def delete(
    name: Annotated[str, typer.Argument(help="The cloned voice to delete.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Delete a cloned voice (preset speakers cannot be deleted)."""
    cfg = read_config(config)
    router = VoiceRouter.from_config(cfg, notify=_say)
    folder = router.library.cloned_folder(name)
    if not yes and not typer.confirm(f"delete voice {name!r} ({folder})?", default=False, err=True):
        _say("nothing deleted")
        raise typer.Exit(1)
    router.library.delete(name)
    typer.echo(f"deleted voice {name!r}")
    if name == cfg.voice.default:
        typer.echo(
            f"{name!r} was the default voice: `talk` now uses {router.fallback_default()!r}; "
            "set voice.default in models.yaml (or SISYPHUS_VOICE) to choose another"
        )


@voices_app.command("say")
@handle_errors
def say(
    name: Annotated[str, typer.Argument(help="Preset speaker or cloned voice.")],
    text: Annotated[str, typer.Argument(help="What to say.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write a WAV file instead of playing it.")] = None,
    language: LanguageOpt = None,
    config: ConfigOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
) -> None:
    """Hear a voice before using it: through the speaker, or into a WAV file."""
    if not text.strip():
        raise ConfigError("the text to say is empty", "pass a sentence in quotes")
    if output is not None and output.suffix.lower() != ".wav":
        raise ConfigError(f"--output must be a .wav file, got {output.name}", "e.g. --output hello.wav")
    if output is not None and not output.parent.is_dir():
        raise ConfigError(f"folder {output.parent} does not exist", "create it or pick another --output")
    cfg = read_config(config, {"device": device, "dtype": dtype, "voice.language": language})
    _refuse_overwriting(output, config, cfg)
    router = VoiceRouter.from_config(cfg, notify=_say)
    key = router.model_for(name)  # unknown names fail before any load
    router.check_prompt(name)
    lang = _check_model(cfg, key)
    if output is None:  # no speaker: say so now, not after the whole reply is synthesised
        from sisyphus.audio.devices import resolve_device

        resolve_device(cfg.audio.output_device, "output")
    key, _ = router.resolve(name)  # a cloned voice's prompt, read whole
    models = _models(cfg)
    key, target = router.resolve(name, load=models.tts)
    model = models.tts(key)
    instruct = cfg.voice.instruct or None
    samples = model.synthesize(
        text,
        target,
        language=None if lang == "auto" else lang,
        instruct=instruct if key == "tts_custom" and model.supports_instruct else None,
        seed=cfg.tts.seed,
        max_frames=max(1, int(cfg.tts.max_seconds_per_phrase * 12.5)),
    )
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    if output is not None:
        import soundfile as sf

        sf.write(output, np.clip(samples, -1.0, 1.0), REFERENCE_RATE_HZ, subtype="PCM_16")
        typer.echo(f"wrote {samples.size / REFERENCE_RATE_HZ:.2f} s of {name!r} to {output}")
        return
    from sisyphus.voices.record import play

    play(cfg, samples)
    _say(f"played {samples.size / REFERENCE_RATE_HZ:.2f} s of {name!r}")
