"""Qwen3TTS: load a checkpoint, build prompts, stream 24 kHz audio as frames are generated.

`stream()` is a plain generator meant to run on the TTS worker thread. It yields the first
chunk after `first_chunk_frames` frames and then every `chunk_frames` frames; the codec's
streaming decoder keeps left context so the joined chunks equal the one-shot decode of the
same codes. Setting `cancel` stops between two frames (barge-in).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sisyphus.errors import ModelError, TTSError
from sisyphus.tts.qwen3.checkpoint import load_net
from sisyphus.tts.qwen3.codec import SpeechTokenizer
from sisyphus.tts.qwen3.codec.streaming import StreamingDecoder
from sisyphus.tts.qwen3.config import load_configs
from sisyphus.runtime import fastpath
from sisyphus.tts.qwen3.generator import FrameGenerator, sampling_key
from sisyphus.tts.qwen3.graphs import StepGraphs, unavailable_reason
from sisyphus.tts.qwen3.layout import build_layout, embed_layout, resolve_language
from sisyphus.tts.qwen3.prompt import ClonePrompt, check_reference_audio
from sisyphus.tts.qwen3.tokenizer import ROLE_LEN, TEXT_TAIL_LEN, TextTokenizer

log = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 24000
GRAPHS_NAME = "tts cuda graphs"
WARMUP_TEXT = "Hello."
WARMUP_FRAMES = 4
CHECK_FRAMES = 8  # frames compared between replayed graphs and eager steps, greedy and sampled
CHECK_SEED = 1234
PRIMED_REFERENCES = 8  # clone references whose primed stream decoder is kept
FRAMES_PER_TEXT_TOKEN = 13  # length guard: about one second of audio per text token...
EXTRA_FRAMES = 38  # ...plus three seconds


@dataclass(frozen=True)
class StreamStats:
    first_audio_s: float  # wall time from the call to the first yielded chunk
    frames: int
    audio_s: float
    wall_s: float
    cancelled: bool
    graphed: bool = False  # frame steps replayed CUDA graphs
    # Where the time went: prompt + prefill (until the prefill is done on the device), the
    # frame steps (each until its codes reach the host) and the vocoder, in seconds.
    prefill_s: float = 0.0
    steps_s: float = 0.0
    decode_s: float = 0.0
    hit_limit: bool = False  # the length guard ended it (no end-of-speech): the text may be cut

    @property
    def real_time_factor(self) -> float:
        return self.wall_s / self.audio_s if self.audio_s > 0 else float("inf")


def resolve_folder(repo_or_folder: str) -> Path:
    """A local folder, or a Hub repo id already in the local HF cache (never downloads)."""
    path = Path(repo_or_folder).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_or_folder, local_files_only=True))
    except Exception:  # not cached, bad id, offline: all mean "not here"
        raise ModelError(f"model {repo_or_folder!r} is neither a folder nor in the local Hugging Face cache",
                         f"run `sisyphus models pull {repo_or_folder}` first") from None


class Qwen3TTS:
    sample_rate_hz: int = SAMPLE_RATE_HZ

    def __init__(self, folder: Path, name: str, device: str | torch.device, dtype: torch.dtype,
                 codec_dtype: torch.dtype | None = None) -> None:
        self.cfg, self.sampling = load_configs(folder)
        self.name = name
        self.device = torch.device(device)
        self.dtype = dtype
        self.net = load_net(folder, self.cfg, self.device, dtype)
        self.talker = self.net.talker
        if self.device.type == "cuda":
            self.talker.keep_text_embedding_on_host()  # 0.6 GB less on the GPU
            torch.cuda.empty_cache()  # and not held by the allocator either
        self.tokenizer = TextTokenizer(folder)
        codec_dir = folder / "speech_tokenizer"
        if not (codec_dir / "config.json").exists():
            raise ModelError(f"{codec_dir} is missing", f"re-run `sisyphus models pull {name}`")
        self.codec = SpeechTokenizer.from_pretrained(codec_dir, device=self.device, dtype=torch.float32)
        if codec_dtype is None:
            # On a GPU the vocoder runs in the model's dtype, as the official package runs it:
            # half the memory, faster chunks. The encoder (clone prompts, made once) stays fp32.
            codec_dtype = dtype if self.device.type == "cuda" else torch.float32
        self.codec.model.decoder.to(codec_dtype)
        self.last_stats: StreamStats | None = None
        self.last_codes: torch.Tensor | None = None
        self.graphs: StepGraphs | None = None  # set up by warmup() on CUDA
        self._primed: dict[bytes, StreamingDecoder] = {}  # stream decoders primed on clone references
        self._nonfinite_said = False

    @classmethod
    def from_pretrained(cls, repo_or_folder: str, *, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32, codec_dtype: torch.dtype | None = None) -> Qwen3TTS:
        """`codec_dtype` is the vocoder's: by default the model's dtype on a GPU, fp32 on a CPU."""
        folder = resolve_folder(str(repo_or_folder))
        log.info("loading Qwen3-TTS from %s (%s, %s)", folder, device, dtype)
        return cls(folder, str(repo_or_folder), device, dtype, codec_dtype)

    def weight_modules(self) -> list[torch.nn.Module]:
        """Every module that holds weights (what the swap strategy's arena adopts)."""
        return [self.net, self.codec.model]

    def placed_on(self, device: str | torch.device) -> None:
        """The weights now live on `device` (the swap arena moved them): drop what was built
        for the old one; the next warmup() captures the graphs there."""
        self.device = torch.device(device)
        self.graphs = None
        self._primed.clear()

    def warmup(self, *, graphs: bool = True) -> None:
        """Run one short utterance so the first reply is as fast as the tenth; on CUDA also
        capture the frame-step graphs and check them against the plain path."""
        started = time.perf_counter()
        voice = self._warmup_voice()
        with torch.inference_mode():
            for _ in self.stream(WARMUP_TEXT, voice, max_frames=WARMUP_FRAMES, min_frames=WARMUP_FRAMES):
                pass
        reason = unavailable_reason(self.device) if graphs else "turned off"
        if reason:
            fastpath.report(GRAPHS_NAME, False, reason, warn=graphs and self.device.type == "cuda")
        else:
            self._setup_graphs(voice)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        log.info("%s warmed up in %.2f s", self.name, time.perf_counter() - started)

    def _warmup_voice(self) -> str | ClonePrompt:
        if self.kind == "custom_voice":
            return self.speakers[0]
        size = self.cfg.talker.hidden_size
        return ClonePrompt(speaker_embedding=torch.zeros(size), ref_codes=None, ref_text_ids=None,
                           x_vector_only=True, model_name=self.name)

    def _setup_graphs(self, voice: str | ClonePrompt) -> None:
        """Capture the frame step for talk's sampling, then require replayed frames to equal
        eager ones, greedy and sampled with one seed; any failure leaves the plain path on
        and says why once."""
        try:
            graphs = StepGraphs(self.talker)
            with torch.inference_mode():
                count = graphs.capture_all(sampling_key(self.sampling, greedy=False))
            self.graphs = graphs
            mismatch = self._graphs_disagree(voice, greedy=True) or self._graphs_disagree(voice, greedy=False)
        except Exception as exc:  # capture can fail on odd drivers/torch builds: fall back
            self.graphs = None
            fastpath.report(GRAPHS_NAME, False, f"capture failed: {str(exc).splitlines()[0][:160]}")
            return
        if mismatch:
            self.graphs = None
            fastpath.report(GRAPHS_NAME, False, mismatch)
            return
        fastpath.report(GRAPHS_NAME, True, f"{count} span buckets, {graphs.prefill_sizes} prefill sizes, "
                                           f"{graphs.capacity} cache slots")

    def _graphs_disagree(self, voice: str | ClonePrompt, *, greedy: bool) -> str:
        """"" when replayed frames equal eagerly computed ones (sampled: with one seed), else what differed."""
        codes = []
        for replay in (False, True):
            prefill, trailing, _, _ = self.prepare(WARMUP_TEXT, voice)
            gen = self._generator(prefill, trailing, max_frames=CHECK_FRAMES, min_frames=CHECK_FRAMES,
                                  greedy=greedy, seed=None if greedy else CHECK_SEED, graphs=self.graphs,
                                  replay=replay)
            codes.append(torch.stack([gen.step() for _ in range(CHECK_FRAMES)]).cpu())
        if torch.equal(codes[0], codes[1]):
            return ""
        frame = int((codes[0] != codes[1]).any(dim=1).nonzero()[0])
        how = "greedy" if greedy else f"sampled (seed {CHECK_SEED})"
        return f"self-check failed: replayed {how} codes differ from eager ones at frame {frame}"

    @property
    def kind(self) -> str:
        """"custom_voice" (preset speakers) or "base" (voice cloning)."""
        return self.cfg.kind

    @property
    def size(self) -> str:
        return self.cfg.size

    @property
    def speakers(self) -> list[str]:
        return self.cfg.speakers

    @property
    def languages(self) -> list[str]:
        return self.cfg.languages

    @property
    def supports_instruct(self) -> bool:
        return self.cfg.supports_instruct

    def create_clone_prompt(self, audio: np.ndarray, sample_rate_hz: int, text: str | None = None,
                            *, language: str | None = None) -> ClonePrompt:
        """Base models only; without `text` the prompt is x-vector-only."""
        if self.cfg.kind != "base":
            raise TTSError(f"{self.name} is a {self.cfg.kind} model and cannot clone voices",
                           "load a Qwen3-TTS Base model to clone")
        audio = check_reference_audio(audio, sample_rate_hz)
        ref_ids = self.tokenizer.ref_ids(text) if text is not None else None
        if language is not None:
            resolve_language(self.cfg, language, None)
        audio_24k = audio
        if sample_rate_hz != SAMPLE_RATE_HZ:
            import librosa

            audio_24k = librosa.resample(audio, orig_sr=int(sample_rate_hz), target_sr=SAMPLE_RATE_HZ)
        with torch.inference_mode():
            emb = self.net.speaker_encoder.embed(audio_24k.astype(np.float32))
        codes = self.codec.encode(audio, sample_rate_hz) if ref_ids is not None else None
        return ClonePrompt(speaker_embedding=emb.detach().float().cpu(), ref_codes=codes, ref_text_ids=ref_ids,
                           x_vector_only=ref_ids is None, model_name=self.name, ref_text=text, language=language)

    def prepare(self, text: str, voice: str | ClonePrompt, *, language: str | None = None,
                instruct: str | None = None, text_in_prompt: bool | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, int]:
        """Prefill embeddings, trailing text embeddings, reference codes (ICL) and text length.

        An empty `instruct` means no instruction, as in the reference.
        """
        ids = self.tokenizer.text_ids(text)
        if instruct is not None and not instruct.strip():
            instruct = None
        n_text = len(ids) - ROLE_LEN - TEXT_TAIL_LEN
        if isinstance(voice, ClonePrompt):
            return self._prepare_clone(ids, voice, language, instruct, text_in_prompt) + (n_text,)
        if self.cfg.kind != "custom_voice":
            raise TTSError(f"{self.name} has no preset speakers", "pass a clone prompt made from reference audio")
        speaker = str(voice).strip().lower()
        if speaker not in self.cfg.talker.speaker_ids:
            raise TTSError(f"unknown speaker {voice!r}; valid: {', '.join(self.speakers)}",
                           "pick one of the listed preset speakers")
        instruct_ids = None
        if instruct is not None:
            if not self.supports_instruct:
                raise TTSError(f"{self.name} does not take an instruct text", "use a 1.7B CustomVoice model")
            instruct_ids = self.tokenizer.instruct_ids(instruct)
        lay = build_layout(self.cfg, ids, language=language, speaker=speaker, instruct_ids=instruct_ids,
                           text_in_prompt=True if text_in_prompt is None else text_in_prompt)
        prefill, trailing = embed_layout(self.talker, lay)
        return prefill, trailing, None, n_text

    def _prepare_clone(self, ids: list[int], prompt: ClonePrompt, language: str | None, instruct: str | None,
                       text_in_prompt: bool | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        if self.cfg.kind != "base":
            raise TTSError(f"{self.name} cannot speak with a clone prompt", "load a Qwen3-TTS Base model")
        if instruct is not None:
            raise TTSError("clone voices do not take an instruct text", "drop the instruct text")
        dim = self.cfg.talker.hidden_size
        if tuple(prompt.speaker_embedding.shape) != (dim,):
            raise TTSError(f"clone prompt embedding has shape {tuple(prompt.speaker_embedding.shape)}, "
                           f"this model needs ({dim},)", "re-create the voice with this model")
        icl = not prompt.x_vector_only and prompt.ref_codes is not None and prompt.ref_text_ids
        lay = build_layout(self.cfg, ids, language=language or prompt.language, has_speaker_vector=True,
                           ref_ids=prompt.ref_text_ids if icl else None,
                           ref_frames=int(prompt.ref_codes.shape[0]) if icl else 0,
                           text_in_prompt=False if text_in_prompt is None else text_in_prompt)
        ref_codes = prompt.ref_codes if icl else None
        prefill, trailing = embed_layout(self.talker, lay, prompt.speaker_embedding, ref_codes)
        return prefill, trailing, ref_codes

    def stream(self, text: str, voice: str | ClonePrompt, *, language: str | None = None,
               instruct: str | None = None, cancel: threading.Event | None = None, seed: int | None = None,
               greedy: bool = False, first_chunk_frames: int = 2, chunk_frames: int = 4,
               max_frames: int | None = None, min_frames: int | None = None,
               text_in_prompt: bool | None = None) -> Iterator[np.ndarray]:
        """24 kHz float32 chunks, yielded as frames are generated.

        Text, voice, language and instruct are checked (TTSError) and the prompt is built
        and prefilled when this is called; frames are generated on `next()`. Generation
        ends at end-of-speech (not before `min_frames`, default 2), at `max_frames`, or at
        the length guard derived from the text (about 1 s per text token + 3 s), whichever
        comes first, so it always ends even when the model never stops by itself.
        """
        if min(first_chunk_frames, chunk_frames, max_frames or 1) < 1 or (min_frames or 0) < 0:
            raise TTSError("frame counts must be positive", "pass first_chunk_frames, chunk_frames, max_frames >= 1")
        start = time.perf_counter()
        prefill, trailing, ref_codes, n_text = self.prepare(text, voice, language=language, instruct=instruct,
                                                            text_in_prompt=text_in_prompt)
        limit = min(self.sampling.max_new_tokens, EXTRA_FRAMES + FRAMES_PER_TEXT_TOKEN * n_text)
        frames = limit if max_frames is None else min(limit, max_frames)
        graphs = self.graphs if self.graphs and self.graphs.fits(prefill.shape[1], frames) else None
        gen = self._generator(prefill, trailing, max_frames=frames, min_frames=2 if min_frames is None else min_frames,
                              greedy=greedy, seed=seed, graphs=graphs)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # so the prefill's share is its own (the first step waits anyway)
        return self._run(gen, ref_codes, cancel, first_chunk_frames, chunk_frames, start)

    def _generator(self, prefill: torch.Tensor, trailing: torch.Tensor, *, max_frames: int, min_frames: int,
                   greedy: bool, seed: int | None, graphs: StepGraphs | None, replay: bool = True) -> FrameGenerator:
        """A frame generator; with `graphs` its steps replay captured graphs."""
        with torch.inference_mode():
            tts_pad = self.talker.text_embed(torch.tensor([self.cfg.tts_pad_id], device=self.device))
        return FrameGenerator(self.talker, prefill, trailing, tts_pad, self.sampling, max_frames=max_frames,
                              min_frames=min_frames, greedy=greedy, seed=seed, graphs=graphs, replay=replay)

    def _run(self, gen: FrameGenerator, ref_codes: torch.Tensor | None, cancel: threading.Event | None,
             first_chunk: int, chunk: int, start: float) -> Iterator[np.ndarray]:
        prefill_s = time.perf_counter() - start
        decoder = self._stream_decoder(ref_codes)
        eos = self.cfg.talker.codec_eos_id
        pending: list[torch.Tensor] = []
        frames: list[torch.Tensor] = []
        first_at, samples, cancelled, ended = None, 0, False, False
        steps_s = decode_s = 0.0
        while not gen.exhausted:
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            began = time.perf_counter()
            codes = gen.step().cpu()
            steps_s += time.perf_counter() - began
            if int(codes[0]) == eos:
                ended = True
                break
            pending.append(codes)
            frames.append(codes)
            if len(pending) >= (chunk if first_at is not None else first_chunk):
                began = time.perf_counter()
                audio = decoder.push(torch.stack(pending))
                decode_s += time.perf_counter() - began
                pending.clear()
                first_at = first_at or time.perf_counter()
                samples += audio.shape[0]
                yield audio
        if pending and not cancelled:
            began = time.perf_counter()
            audio = decoder.push(torch.stack(pending))
            decode_s += time.perf_counter() - began
            first_at = first_at or time.perf_counter()
            samples += audio.shape[0]
            yield audio
        self._check_finite(gen)
        self.last_codes = torch.stack(frames) if frames else torch.zeros(0, 16, dtype=torch.long)
        wall = time.perf_counter() - start
        self.last_stats = StreamStats((first_at or time.perf_counter()) - start, len(frames),
                                      samples / SAMPLE_RATE_HZ, wall, cancelled, gen.replaying,
                                      prefill_s, steps_s, decode_s, hit_limit=not (ended or cancelled))

    def _check_finite(self, gen: FrameGenerator) -> None:
        """Say once that logits were NaN/inf (the step ended the phrase instead of crashing
        the CUDA context); if it happened on replayed graphs, fall back to the plain path."""
        if gen.graphs is not None and gen.graphs.owner is not gen:
            return  # the shared state already holds a newer utterance
        if not bool(gen.state.nonfinite):
            return
        if gen.replaying:
            self.graphs = None
            fastpath.report(GRAPHS_NAME, False, f"non-finite logits in a replayed frame (frame {gen.frame}); "
                                                "the phrase was cut and the plain path is used from now on")
        elif not self._nonfinite_said:
            self._nonfinite_said = True
            log.warning("%s produced non-finite logits (%s) at frame %d; the phrase was cut short. "
                        "If this repeats, try --dtype bf16 or fp32", self.name, str(self.dtype).replace("torch.", ""),
                        gen.frame)

    def _stream_decoder(self, ref_codes: torch.Tensor | None) -> StreamingDecoder:
        """A streaming decoder; for a clone reference, primed on its codes (left context for
        the first frames; their audio is the reference's, dropped). Priming a reference
        costs a decode of the whole reference, so the primed state is kept per reference
        and copied: only a voice's first reply pays for it."""
        if ref_codes is None:
            return self.codec.stream_decoder()
        key = hashlib.sha1(ref_codes.to(torch.int64).cpu().numpy().tobytes()).digest()
        primed = self._primed.pop(key, None)
        if primed is None:
            primed = self.codec.stream_decoder()
            primed.push(ref_codes)
        self._primed[key] = primed  # most recently used last
        while len(self._primed) > PRIMED_REFERENCES:
            self._primed.pop(next(iter(self._primed)))
        return primed.copy()

    def synthesize(self, text: str, voice: str | ClonePrompt, **kwargs) -> np.ndarray:
        """One-shot: the whole utterance as one float32 array at 24 kHz."""
        chunks = list(self.stream(text, voice, **kwargs))
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
