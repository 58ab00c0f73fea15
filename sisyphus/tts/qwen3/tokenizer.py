"""Text tokenizer (Qwen2 byte-level BPE from the checkpoint folder) and the chat templates.

The talker reads text as token ids cut at fixed offsets of three templates: the text to
speak (assistant turn + the next assistant header), an instruction (user turn) and a clone
reference transcript (assistant turn). The offsets assume "<|im_start|>", "assistant" and
"\\n" are one token each, which holds for the official vocabulary.

The reference package loads its tokenizer with `fix_mistral_regex=True`, which under
transformers 4.57.3 swaps in a different pre-tokenizer split pattern (e.g. CamelCase and
contractions split differently). Sisyphus uses the pattern the checkpoint's own files
declare; ids agree with the reference for ordinary words and punctuation.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sisyphus.errors import ModelError, TTSError

log = logging.getLogger(__name__)

ROLE_LEN = 3  # <|im_start|> assistant \n
TEXT_TAIL_LEN = 5  # <|im_end|> \n <|im_start|> assistant \n
REF_TAIL_LEN = 2  # <|im_end|> \n


def assistant_template(text: str) -> str:
    return f"<|im_start|>assistant\n{text}<|im_end|>\n<|im_start|>assistant\n"


def ref_template(text: str) -> str:
    return f"<|im_start|>assistant\n{text}<|im_end|>\n"


def instruct_template(text: str) -> str:
    return f"<|im_start|>user\n{text}<|im_end|>\n"


def has_speakable(text: str) -> bool:
    """True when the text holds at least one letter or digit (in any script)."""
    return any(ch.isalnum() for ch in text)


class TextTokenizer:
    """Wraps the checkpoint's Qwen2 tokenizer; loads from vocab.json/merges.txt/tokenizer_config.json."""

    def __init__(self, folder: Path) -> None:
        from transformers import Qwen2Tokenizer  # heavy import, kept out of module import

        missing = [n for n in ("vocab.json", "merges.txt") if not (folder / n).exists()]
        if missing:
            raise ModelError(
                f"text tokenizer files missing in {folder}: {', '.join(missing)}",
                "re-run `sisyphus models pull` for this model",
            )
        try:
            self._tok = Qwen2Tokenizer.from_pretrained(str(folder))
        except Exception as exc:  # transformers raises many kinds for broken files
            raise ModelError(f"text tokenizer in {folder} cannot be loaded: {exc}",
                             "re-run `sisyphus models pull` for this model") from None

    def encode(self, text: str) -> list[int]:
        return list(self._tok(text, add_special_tokens=False)["input_ids"])

    def token_id(self, token: str) -> int:
        return int(self._tok.convert_tokens_to_ids(token))

    def text_ids(self, text: str) -> list[int]:
        """Ids of the full speak template; the talker uses [3:-5] as the text proper."""
        _check_text(text, "text")
        ids = self.encode(assistant_template(text))
        if len(ids) <= ROLE_LEN + TEXT_TAIL_LEN:
            raise TTSError("the text to speak is empty", "pass some words to speak")
        return ids

    def instruct_ids(self, instruct: str) -> list[int]:
        _check_text(instruct, "instruct")
        return self.encode(instruct_template(instruct))

    def ref_ids(self, transcript: str) -> list[int]:
        _check_text(transcript, "reference transcript")
        ids = self.encode(ref_template(transcript))
        if len(ids) <= ROLE_LEN + REF_TAIL_LEN:
            raise TTSError("the reference transcript is empty", "pass what the reference audio says")
        return ids


def _check_text(text: str, what: str) -> None:
    if not isinstance(text, str) or not text.strip():
        raise TTSError(f"the {what} is empty", f"pass a non-empty {what}")
    if not has_speakable(text):
        raise TTSError(f"the {what} has nothing speakable: {text[:40]!r}",
                       "pass text with at least one word or number")
