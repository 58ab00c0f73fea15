"""The `sisyphus` command: talk, devices, doctor, models, voices, bench.

Thin entry points: each command reads the config, calls library code and maps expected
errors to one line and an exit code (see cli_support).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from sisyphus import __version__
from sisyphus.cli_help import hide_flag_types
from sisyphus.cli_support import handle_errors, read_config, set_debug
from sisyphus.config import default_config_path
from sisyphus.errors import ConfigError

hide_flag_types()

app = typer.Typer(
    help="Sisyphus: a local voice assistant. Speak, and an LLM answers aloud.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Download and check the ASR and TTS models.", no_args_is_help=True)
app.add_typer(models_app, name="models")

ConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="Config file (default: SISYPHUS_CONFIG, else ./models.yaml).", envvar="SISYPHUS_CONFIG"),
]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
DtypeOpt = Annotated[Optional[str], typer.Option("--dtype", help="auto, bf16, fp16 or fp32.")]


def _version(value: bool) -> None:
    if value:
        print(f"sisyphus {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.", envvar="SISYPHUS_DEBUG")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    set_debug(debug)


@app.command()
@handle_errors
def talk(
    config: ConfigOpt = None,
    voice: Annotated[Optional[str], typer.Option("--voice", "-v", help="Preset speaker or cloned voice.")] = None,
    language: Annotated[Optional[str], typer.Option("--language", help="Reply language, or auto.")] = None,
    text: Annotated[bool, typer.Option("--text", help="Type instead of speak (replies are still spoken).")] = False,
    input_file: Annotated[Optional[Path], typer.Option("--input", "-i", help="Audio file instead of the microphone, paced in real time.")] = None,
    output_file: Annotated[Optional[Path], typer.Option("--output", "-o", help="WAV file instead of the speaker, on the same timeline.")] = None,
    plain: Annotated[bool, typer.Option("--plain", help="One line per event instead of the live dashboard.")] = False,
    barge_in: Annotated[Optional[bool], typer.Option("--barge-in/--no-barge-in", help="Let speech interrupt a reply.")] = None,
    memory: Annotated[Optional[str], typer.Option("--memory", help="resident, lazy-tts or swap.")] = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    llm_model: Annotated[Optional[str], typer.Option("--llm-model", help="Chat model name.")] = None,
    llm_url: Annotated[Optional[str], typer.Option("--llm-url", help="OpenAI-compatible base URL.")] = None,
    input_device: Annotated[Optional[str], typer.Option("--input-device", help="Microphone index or name.")] = None,
    output_device: Annotated[Optional[str], typer.Option("--output-device", help="Speaker index or name.")] = None,
    transcript_dir: Annotated[Optional[Path], typer.Option("--transcript-dir", help="Where session transcripts go.", envvar="SISYPHUS_TRANSCRIPT_DIR")] = None,
) -> None:
    """Talk with the assistant: microphone → ASR → LLM → TTS → speaker."""
    from sisyphus.agent.talk import run_talk
    from sisyphus.agent.build import TalkOptions

    if text and input_file is not None:
        raise ConfigError("--text and --input cannot be used together", "choose typing or an audio file")
    cfg = read_config(
        config,
        {
            "voice.default": voice,
            "voice.language": language,
            "barge_in": barge_in,
            "memory": memory,
            "device": device,
            "dtype": dtype,
            "llm.model": llm_model,
            "llm.base_url": llm_url,
            "audio.input_device": input_device,
            "audio.output_device": output_device,
        },
    )
    options = TalkOptions(
        input_file=input_file,
        output_file=output_file,
        text_mode=text,
        plain=plain,
        transcript_dir=transcript_dir,
        read_keyboard=text or sys.stdin.isatty(),
        voice=voice,
        config_file=config or default_config_path(),
    )
    raise typer.Exit(run_talk(cfg, options))


@app.command()
@handle_errors
def devices() -> None:
    """List audio devices and the CUDA status."""
    from sisyphus.agent.doctor import print_devices

    print_devices()


@app.command()
@handle_errors
def doctor(config: ConfigOpt = None) -> None:
    """Check torch/CUDA, models, remote ASR/TTS servers, audio devices and the LLM endpoint; say how to fix each."""
    from sisyphus.agent.doctor import run_doctor

    raise typer.Exit(run_doctor(read_config(config)))


@models_app.command("pull")
@handle_errors
def models_pull(
    which: Annotated[str, typer.Argument(help="asr, tts-base, tts-custom or all.")] = "all",
    config: ConfigOpt = None,
) -> None:
    """Download models from the Hugging Face Hub (resumable; honours HF_ENDPOINT and HF_HOME)."""
    from sisyphus.agent.doctor import pull_models

    pull_models(read_config(config), which)


@models_app.command("list")
@handle_errors
def models_list(config: ConfigOpt = None) -> None:
    """Show the configured models and whether each is on disk."""
    from sisyphus.agent.doctor import print_models

    print_models(read_config(config))


@app.command()
@handle_errors
def bench(
    stages: Annotated[
        Optional[list[str]],
        typer.Argument(help="Stages to run: vad, turn, asr, tts, llm, pipeline, aec (default: vad turn asr tts pipeline; llm and aec only when named).", show_default=False),
    ] = None,
    random_weights: Annotated[bool, typer.Option("--random-weights", help="Real-size models with random weights (no downloads; generation lengths forced).")] = False,
    size: Annotated[str, typer.Option("--size", help="With --random-weights: auto (full on CUDA, reduced on CPU), reduced, full, or tiny (test widths: runs in seconds, figures mean nothing).")] = "auto",
    repeats: Annotated[int, typer.Option("--repeats", help="Timed runs per figure, after the warm-up.")] = 5,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed runs before them.")] = 1,
    json_file: Annotated[Optional[Path], typer.Option("--json", help="Also write every figure, raw values and versions to this JSON file.")] = None,
    config: ConfigOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    cache: Annotated[Optional[Path], typer.Option("--cache", help="Where random checkpoints are kept (default ~/.cache/sisyphus/bench).")] = None,
    seconds: Annotated[float, typer.Option("--seconds", help="Audio pushed through the VAD by the vad stage.")] = 10.0,
    turn_taking: Annotated[bool, typer.Option("--turn-taking/--no-turn-taking", help="pipeline: also run the clips with semantic end of turn and prepared replies (two more conversations).")] = True,
) -> None:
    """Measure latency per stage, voice to voice and memory; medians and p90 over repeats."""
    from rich.console import Console

    from sisyphus.bench.run import BenchOptions, parse_stages, run_bench

    options = BenchOptions(
        stages=parse_stages(stages), random_weights=random_weights, size=size, repeats=repeats, warmup=warmup,
        json_path=json_file, cache_dir=cache, vad_seconds=seconds, turn_taking=turn_taking,
    )  # fmt: skip
    cfg = read_config(config, {"device": device, "dtype": dtype})
    wide = None if sys.stdout.isatty() else 160  # a pipe or file gets whole rows, not wrapped cells
    run_bench(cfg, options, Console(width=wide), Console(stderr=True, soft_wrap=True))


def _mount_voices() -> None:
    from sisyphus.voices.commands import voices_app

    app.add_typer(voices_app, name="voices")


_mount_voices()


def main() -> None:
    _replace_unencodable_output()
    app()


def _replace_unencodable_output() -> None:
    """Output redirected on Windows is cp1252: "✓", "→" and "•" must not end in a traceback."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if encoding != "utf8" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")


if __name__ == "__main__":
    main()
