"""`sisyphus bench`: pick the models, run the asked stages in turn, render and write the report.

Stages are modules `sisyphus.bench.<name>` with `run(ctx)`, imported only when asked for,
so a stage that needs extra packages (or has not shipped) never stops the others. Memory
figures are always taken last, after every model the stages loaded has done its work.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sisyphus.config import Config
from sisyphus.errors import ConfigError
from sisyphus.runtime.remote import remote_keys
from sisyphus.safetext import safe_line

log = logging.getLogger(__name__)

STAGES = ("vad", "turn", "asr", "tts", "llm", "pipeline", "aec")
DEFAULT_STAGES = ("vad", "turn", "asr", "tts", "pipeline")  # llm (a remote endpoint) and aec (audio): only when named
SIZE_CHOICES = ("auto", "reduced", "full")
HIDDEN_SIZES = ("tiny",)  # test widths: checks that everything runs, in seconds; figures mean nothing


@dataclass(frozen=True)
class BenchOptions:
    stages: tuple[str, ...] = DEFAULT_STAGES
    random_weights: bool = False
    size: str = "auto"  # auto | reduced | full (| tiny); only with random_weights
    repeats: int = 5
    warmup: int = 1
    json_path: Path | None = None
    cache_dir: Path | None = None  # random checkpoints go to <cache_dir>/<size>; default ~/.cache/sisyphus/bench
    vad_seconds: float = 10.0
    turn_taking: bool = True  # pipeline: also the runs with semantic end of turn / prepared replies


def parse_stages(names: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Stage names in the order given, without repeats; none means the default set."""
    if not names:
        return DEFAULT_STAGES
    unknown = [n for n in names if n not in STAGES]
    if unknown:
        raise ConfigError(f"unknown bench stage {unknown[0]!r}; valid stages: {', '.join(STAGES)}",
                          "name stages like `sisyphus bench asr tts`, or none for the default set")
    return tuple(dict.fromkeys(names))


def check_options(options: BenchOptions, config: Config) -> None:
    if options.repeats < 1:
        raise ConfigError(f"--repeats must be at least 1, got {options.repeats}", "pass --repeats 5, say")
    if options.warmup < 0:
        raise ConfigError(f"--warmup must be 0 or more, got {options.warmup}", "pass --warmup 1, say")
    if options.vad_seconds < 1:
        raise ConfigError(f"--seconds must be at least 1, got {options.vad_seconds:g}", "pass --seconds 10, say")
    if options.size not in SIZE_CHOICES + HIDDEN_SIZES:
        raise ConfigError(f"--size must be one of {', '.join(SIZE_CHOICES + HIDDEN_SIZES)}, got {options.size!r}",
                          "auto picks full on CUDA and reduced on the CPU")
    if options.random_weights and remote_keys(config):
        raise ConfigError("--random-weights measures models in this process, but remote servers are configured "
                          f"({', '.join(sorted(remote_keys(config)))})",
                          "unset SISYPHUS_*_URL / remote.*_url, or drop --random-weights to measure the servers")
    if options.size != "auto" and not options.random_weights:
        raise ConfigError(f"--size {options.size} only applies to --random-weights",
                          "add --random-weights, or drop --size to bench the configured models")


def resolve_size(size: str, device: str) -> str:
    """auto: the real sizes on a GPU; on a CPU the reduced ones (the full ones take minutes per reply)."""
    if size != "auto":
        return size
    return "full" if device.startswith("cuda") else "reduced"


def run_bench(config: Config, options: BenchOptions, console: Any, progress: Any) -> Any:
    """Run the stages and the memory figures; render the table; write JSON if asked. Returns the report."""
    from sisyphus.bench.context import BenchContext
    from sisyphus.bench.report import BenchReport
    from sisyphus.runtime.device import pick_device, pick_dtype

    check_options(options, config)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # loading bars would tear through the progress lines
    baseline = _gpu_baseline(config.device)  # before anything creates a CUDA context
    device = pick_device(config.device)
    dtype = pick_dtype(device, config.dtype)
    say = _sayer(progress)
    size = "real"
    if options.random_weights:
        size = resolve_size(options.size, device)
        if size == "full" and not device.startswith("cuda"):
            say("full-size models on the CPU: about 25 GB of memory and minutes per reply; --size reduced is quicker")
        config = _with_random_models(config, size, options.cache_dir, say)
    # Every model stays loaded: the memory figures describe a session with all of them resident.
    config = dataclasses.replace(config, memory="resident", device=device)
    from sisyphus.agent.models import ModelSet

    models = ModelSet(config, device=device, dtype=dtype, notify=say)
    ctx = BenchContext(config=config, device=device, dtype=dtype, repeats=options.repeats, warmup=options.warmup,
                       random_weights=options.random_weights, size=size, report=BenchReport(stages=list(options.stages)),
                       models=models, vad_seconds=options.vad_seconds, turn_taking=options.turn_taking, say=say,
                       gpu_baseline_bytes=baseline)
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats(device)
    current = options.stages[0] if options.stages else "bench"
    try:
        for name in options.stages:
            current = name
            run_stage(ctx, name)
    except KeyboardInterrupt:
        # A long run stopped by Ctrl-C still shows (and writes) what it measured, then exits 130.
        ctx.report.note(current, "interrupted (Ctrl-C): this stage and the ones after it are incomplete")
        _finish(ctx, options, console, say)
        raise
    _finish(ctx, options, console, say)
    return ctx.report


def _gpu_baseline(device: str) -> int | None:
    """Card memory in use before this run (other processes, the driver), read without CUDA."""
    if device.strip().lower() == "cpu":
        return None
    from sisyphus.runtime.memory import device_used_bytes

    return device_used_bytes(device if device.startswith("cuda:") else "cuda:0")


def _finish(ctx: Any, options: BenchOptions, console: Any, say: Any) -> None:
    """Memory figures last, then the table and the JSON file."""
    from sisyphus.bench.context import environment

    run_stage(ctx, "memory")
    ctx.report.environment = environment(ctx)
    ctx.report.render(console)
    if options.json_path is not None:
        written = ctx.report.write_json(options.json_path)
        say(f"wrote {written}")


def run_stage(ctx: Any, name: str) -> None:
    """Import `sisyphus.bench.<name>` and run it; a stage module that is not there, or a stage
    that needs a package this machine lacks (the GPU machine has no soundfile, say),
    becomes a note and the other stages still run."""
    try:
        module = importlib.import_module(f"sisyphus.bench.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"sisyphus.bench.{name}":
            _skip_for_missing_package(ctx, name, exc)
            return
        ctx.report.note(name, "stage not available in this installation; skipped")
        return
    try:
        module.run(ctx)
    except ModuleNotFoundError as exc:
        _skip_for_missing_package(ctx, name, exc)


def _skip_for_missing_package(ctx: Any, stage: str, exc: ModuleNotFoundError) -> None:
    """Note a stage skipped for a missing third-party package; anything else is a real error."""
    package = (exc.name or "").split(".")[0]
    if not package or package == "sisyphus":
        raise exc
    log.warning("bench %s skipped: %s", stage, exc)
    ctx.say(f"{stage}: skipped, it needs the Python package {package!r}, which is not installed")
    ctx.report.note(stage, f"skipped: needs the Python package {package!r} (pip install it, or run the other stages)")


def _with_random_models(config: Config, size: str, cache_dir: Path | None, say: Any) -> Config:
    """The config with models.* pointing at random checkpoints of `size` (written when missing)."""
    from sisyphus.bench.models import default_cache, missing_models, prepare_in_child

    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache()
    missing = missing_models(cache, size)
    if missing:
        say(f"writing random {size} checkpoints ({', '.join(missing)}) into {cache / size}; later runs reuse them")
    folders = prepare_in_child(cache, size)
    models = dataclasses.replace(config.models, **{key: str(path) for key, path in folders.items()})
    return dataclasses.replace(config, models=models)


def _sayer(progress: Any) -> Any:
    def say(text: str) -> None:
        from rich.markup import escape

        log.info("%s", text)
        if progress is not None:
            progress.print(f"[dim]· {escape(safe_line(text))}[/dim]", highlight=False)

    return say
