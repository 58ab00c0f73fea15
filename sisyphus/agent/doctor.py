"""`sisyphus doctor`, `devices` and `models pull/list`: checks that say how to fix each failure."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sisyphus.hub import model_folder
from sisyphus.config import Config, resolve_path
from sisyphus.errors import ConfigError, SisyphusError
from sisyphus.runtime.remote import remote_keys
from sisyphus.safetext import redact_url, safe_line

MODEL_KEYS = {"asr": "asr", "tts-base": "tts_base", "tts-custom": "tts_custom"}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def run_doctor(config: Config, console: Console | None = None) -> int:
    """Run every check (each remote server's too), print one line each; exit code 1 if any failed."""
    console = console or Console()
    checks: list[Check] = []
    for probe in (_check_torch, _check_models, _check_remote, _check_audio, _check_llm):
        checks.extend(probe(config))
    for check in checks:
        mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
        # Details quote servers, paths and URLs: no markup, no escapes, no credentials.
        line = f"{mark} [bold]{check.name}[/]: {escape(safe_line(check.detail))}"
        if check.fix:  # a failure's fix, or advice that goes with a passing check (CUDA)
            # A fix may put a command on its own line: each line made safe on its own.
            fix = "\n".join(escape(safe_line(part)) for part in check.fix.split("\n"))
            line += f"\n    [yellow]→ {fix}[/]"
        console.print(line, highlight=False)
    failed = sum(not c.ok for c in checks)
    console.print(f"{len(checks) - failed} ok, {failed} failed")
    return 1 if failed else 0


def _check_torch(config: Config) -> list[Check]:
    from sisyphus.runtime.device import cuda_status

    status = cuda_status()
    if status.available:
        detail = f"{status.device_name} (sm {status.capability}), torch {status.torch_version}, CUDA {status.cuda_version}"
        return [Check("CUDA", True, detail)]
    wants_cuda = config.device.startswith("cuda")
    version = "" if status.torch_version in status.reason else f" (torch {status.torch_version})"
    detail = f"unavailable: {status.reason}{version}; models run on the CPU, slowly"
    return [Check("CUDA", not wants_cuda, detail, status.fix)]


def _check_models(config: Config) -> list[Check]:
    checks = []
    remote = remote_keys(config)
    for key, attr in MODEL_KEYS.items():
        repo = getattr(config.models, attr)
        if attr in remote:
            url = getattr(config.remote, f"{attr}_url")
            checks.append(Check(f"model {key}", True, f"{repo}: served by {url}, not needed on this disk"))
            continue
        try:
            folder = model_folder(config, attr)
        except SisyphusError as exc:
            checks.append(Check(f"model {key}", False, exc.message, exc.hint))
        else:
            checks.append(Check(f"model {key}", True, f"{repo} → {folder}"))
    return checks


def _check_remote(config: Config) -> list[Check]:
    """Each remote server: reachable, serving the configured model, answering a tiny request."""
    from sisyphus.runtime.remote import remote_endpoint

    checks = []
    for key in ("asr", "tts_custom", "tts_base"):
        endpoint = remote_endpoint(config, key)
        if endpoint is None:
            continue
        name = f"remote {key.replace('_', '-')}"
        try:
            checks.append(Check(name, True, f"{endpoint.base_url}: {_probe(config, endpoint)}"))
        except SisyphusError as exc:
            checks.append(Check(name, False, exc.message, exc.hint))
    return checks


def _probe(config: Config, endpoint: Any) -> str:
    """One tiny request: a packaged speech clip to transcribe, or "Hello." to speak."""
    import soundfile as sf

    from sisyphus.bench.clips import clip_paths, clip_texts

    path = clip_paths()[0]
    clip, rate = sf.read(path, dtype="float32")
    if endpoint.key == "asr":
        from sisyphus.asr.remote import RemoteRecognizer

        engine: Any = RemoteRecognizer(endpoint, language=config.voice.language)
        try:
            return engine.check(clip)
        finally:
            engine.close()
    from sisyphus.tts.remote import CloneReference, RemoteSynthesizer

    engine = RemoteSynthesizer(endpoint, stream_format=config.remote.tts_stream_format)
    try:
        return engine.check(CloneReference.from_samples("doctor", clip, rate, clip_texts()[path.name]))
    finally:
        engine.close()


def _check_audio(config: Config) -> list[Check]:
    from sisyphus.audio.devices import resolve_device

    checks = []
    for kind, spec in (("input", config.audio.input_device), ("output", config.audio.output_device)):
        try:
            index = resolve_device(spec, kind)
            checks.append(Check(f"audio {kind}", True, f"device {index if index is not None else 'default'} ({spec or 'system default'})"))
        except SisyphusError as exc:
            checks.append(Check(f"audio {kind}", False, exc.message, exc.hint or "use --input/--output files, or pick a device from `sisyphus devices`"))
    return checks


def _check_llm(config: Config) -> list[Check]:
    from sisyphus.llm.client import ChatClient

    async def probe() -> str:
        async with ChatClient(config.llm) as client:
            return await client.check()

    try:
        detail = asyncio.run(probe())
    except SisyphusError as exc:
        return [Check("LLM endpoint", False, exc.message, exc.hint)]
    return [Check("LLM endpoint", True, f"{redact_url(config.llm.base_url)}: {detail}")]


def print_devices(console: Console | None = None) -> None:
    from sisyphus.audio.devices import list_devices
    from sisyphus.runtime.device import cuda_status

    console = console or Console()
    devices = list_devices()
    if not devices:
        console.print(
            "No audio devices found. Without them, use files or typing:\n"
            "    sisyphus talk --input FILE.wav --output REPLY.wav\n"
            "    sisyphus talk --text --output REPLY.wav",
            highlight=False,
        )
    table = Table(title="Audio devices")
    for column in ("index", "name", "in", "out", "default rate", "default for"):
        table.add_column(column)
    for dev in devices:
        defaults = [kind for kind in ("input", "output") if dev[f"default_{kind}"]]
        table.add_row(
            str(dev["index"]), escape(safe_line(str(dev["name"]))),  # the OS names devices: no markup, no escapes
            str(dev["max_input_channels"]), str(dev["max_output_channels"]),
            f"{dev['default_samplerate_hz']:.0f} Hz", ", ".join(defaults),
        )
    if devices:
        console.print(table)
    status = cuda_status()
    if status.available:
        console.print(f"CUDA: {status.device_name}, compute capability {status.capability}, torch {status.torch_version}, CUDA {status.cuda_version}")
    else:
        console.print(f"CUDA unavailable: {status.reason}; models run on the CPU", highlight=False)
        if status.fix:  # the install command on its own line: an 80-column terminal keeps it whole
            console.print(f"    → {status.fix}", highlight=False)


def pull_models(config: Config, which: str, pull: Callable | None = None) -> None:
    from sisyphus.hub import pull as hub_pull

    pull = pull or hub_pull
    if which != "all" and which not in MODEL_KEYS:
        raise ConfigError(f"unknown model {which!r}", "choose one of: asr, tts-base, tts-custom, all")
    keys = list(MODEL_KEYS) if which == "all" else [which]
    for key in keys:
        repo = getattr(config.models, MODEL_KEYS[key])
        local = resolve_path(config, repo)
        folder = pull(str(local) if local.exists() else repo, config.models.cache_dir)
        print(f"{key}: {repo} → {folder}")


def print_models(config: Config) -> None:
    for check in _check_models(config):
        state = "ok" if check.ok else f"missing — {check.fix}"
        print(f"{check.name}: {check.detail} [{state}]")
