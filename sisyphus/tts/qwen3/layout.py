"""The talker's prompt: which text token and which codec input sit at each position.

Each prefill position is the sum of a projected text-token embedding and a codec input
(a codec control id, the speaker vector, or one reference frame = sum of its 16 codebook
embeddings). The layout is built as plain id lists first, so tests can read it, and then
embedded. After the prefill, one `trailing` text token is added to each generated frame's
input until they run out; then tts_pad is added.

Two text modes, as in the reference: "all text in the prompt" (the reference's default
for preset voices) and "text trails the audio" (its default for clones), where each new
frame's input carries the next text token.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from sisyphus.errors import TTSError
from sisyphus.tts.qwen3.config import ModelConfig
from sisyphus.tts.qwen3.talker import Talker
from sisyphus.tts.qwen3.tokenizer import REF_TAIL_LEN, ROLE_LEN, TEXT_TAIL_LEN


@dataclass
class PromptLayout:
    text: list[int | None] = field(default_factory=list)  # text token per position
    codec: list[int | None] = field(default_factory=list)  # codec id per position
    speaker_pos: int | None = None  # position that takes the speaker vector
    ref_pos: int | None = None  # first position of the reference frames (ICL clone)
    ref_frames: int = 0
    trailing: list[int] = field(default_factory=list)  # text fed with generated frames

    def add(self, text: int | None, codec: int | None) -> None:
        self.text.append(text)
        self.codec.append(codec)

    def __len__(self) -> int:
        return len(self.text)


def resolve_language(cfg: ModelConfig, language: str | None, speaker: str | None) -> int | None:
    """Codec language id, or None for "auto"; preset dialect speakers imply their dialect."""
    lang = (language or "auto").strip().lower()
    if lang != "auto" and (lang not in cfg.talker.language_ids or "dialect" in lang):
        raise TTSError(f"unknown language {language!r}; valid: {', '.join(cfg.languages)}",
                       "pick one of the listed languages or 'auto'")
    lang_id = None if lang == "auto" else cfg.talker.language_ids[lang]
    dialect = cfg.talker.speaker_dialect.get(speaker) if speaker else None
    if lang in ("chinese", "auto") and dialect:
        lang_id = cfg.talker.language_ids[dialect]
    return lang_id


def build_layout(cfg: ModelConfig, text_ids: list[int], *, language: str | None = None,
                 speaker: str | None = None, has_speaker_vector: bool = False,
                 instruct_ids: list[int] | None = None, ref_ids: list[int] | None = None,
                 ref_frames: int = 0, text_in_prompt: bool = True) -> PromptLayout:
    t = cfg.talker
    lang_id = resolve_language(cfg, language, speaker)
    lay = PromptLayout()
    for tok in instruct_ids or []:
        lay.add(tok, None)
    for tok in text_ids[:ROLE_LEN]:
        lay.add(tok, None)
    if lang_id is None:
        head = [t.codec_nothink_id, t.codec_think_bos_id, t.codec_think_eos_id]
    else:
        head = [t.codec_think_id, t.codec_think_bos_id, lang_id, t.codec_think_eos_id]
    codec: list[int | None] = list(head)
    if speaker is not None:
        codec.append(t.speaker_ids[speaker])
    elif has_speaker_vector:
        codec.append(None)
    codec += [t.codec_pad_id]  # the closing codec_bos goes with the first text position
    for i, c in enumerate(codec):
        lay.add(cfg.tts_bos_id if i == len(codec) - 1 else cfg.tts_pad_id, c)
        if c is None:
            lay.speaker_pos = len(lay) - 1
    body = text_ids[ROLE_LEN:-TEXT_TAIL_LEN]
    if ref_ids is not None and ref_frames > 0:
        _icl_body(cfg, lay, list(ref_ids[ROLE_LEN:-REF_TAIL_LEN]) + list(body), ref_frames, text_in_prompt)
    elif text_in_prompt:
        for tok in list(body) + [cfg.tts_eos_id]:
            lay.add(tok, t.codec_pad_id)
        lay.add(cfg.tts_pad_id, t.codec_bos_id)
    else:
        lay.add(body[0], t.codec_bos_id)
        lay.trailing = list(body[1:]) + [cfg.tts_eos_id]
    return lay


def _icl_body(cfg: ModelConfig, lay: PromptLayout, text: list[int], frames: int, text_in_prompt: bool) -> None:
    """Clone with transcript: reference + new text, next to codec_bos + the reference frames."""
    t = cfg.talker
    text = text + [cfg.tts_eos_id]
    n_codec = frames + 1  # codec_bos, then one position per reference frame
    if text_in_prompt:
        for tok in text:
            lay.add(tok, t.codec_pad_id)
        lay.add(cfg.tts_pad_id, t.codec_bos_id)
        lay.ref_pos = len(lay)
        for _ in range(frames):
            lay.add(cfg.tts_pad_id, None)
    else:
        padded = text[:n_codec] + [cfg.tts_pad_id] * max(0, n_codec - len(text))
        lay.add(padded[0], t.codec_bos_id)
        lay.ref_pos = len(lay)
        for tok in padded[1:]:
            lay.add(tok, None)
        lay.trailing = text[n_codec:]
    lay.ref_frames = frames


@torch.no_grad()
def embed_layout(talker: Talker, lay: PromptLayout, speaker_vector: torch.Tensor | None = None,
                 ref_codes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Embed a layout: returns prefill (1, T, H) and trailing text embeddings (1, N, H)."""
    p = next(talker.parameters())
    dev = p.device
    x = torch.zeros(1, len(lay), talker.cfg.hidden_size, dtype=p.dtype, device=dev)
    t_pos = [i for i, v in enumerate(lay.text) if v is not None]
    t_ids = torch.tensor([lay.text[i] for i in t_pos], device=dev)
    x[0, t_pos] = x[0, t_pos] + talker.text_embed(t_ids)
    c_pos = [i for i, v in enumerate(lay.codec) if v is not None]
    if c_pos:
        c_ids = torch.tensor([lay.codec[i] for i in c_pos], device=dev)
        x[0, c_pos] = x[0, c_pos] + talker.codec_embed(c_ids)
    if lay.speaker_pos is not None:
        if speaker_vector is None:
            raise TTSError("this voice needs a speaker embedding", "use a clone prompt made by this model")
        x[0, lay.speaker_pos] = x[0, lay.speaker_pos] + speaker_vector.to(dev, p.dtype)
    if lay.ref_pos is not None and lay.ref_frames:
        frames = talker.frame_embed(ref_codes.to(dev).long())
        x[0, lay.ref_pos : lay.ref_pos + lay.ref_frames] += frames
    trailing = talker.text_embed(torch.tensor(lay.trailing, dtype=torch.long, device=dev)).unsqueeze(0)
    return x, trailing
