"""What the user actually heard of a reply, from the samples the speaker played.

A reply is a sequence of phrases, each with a span of samples on the turn's audio
timeline. After a barge-in only the played part belongs in the history: whole phrases
that finished, plus the words of the phrase that was cut, in proportion to how much of
its audio was played.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sisyphus.llm.chunker import join_phrases, spoken_prefix

INTERRUPTED_MARK = "…"
# Speech rate for estimating how much of a phrase the TTS length guard let through: about
# 150 words a minute in English, 5 characters a second in Chinese (a CJK char is 3 units).
SPOKEN_UNITS_PER_S = 15.0


@dataclass
class SpokenPhrase:
    text: str
    start_sample: int
    end_sample: int  # grows while the phrase's audio is generated
    # Set when the length guard ended the phrase's audio: the part of the text its audio
    # had time for, marked as cut. None: the phrase was said whole.
    said: str | None = None

    @property
    def spoken(self) -> str:
        return self.text if self.said is None else self.said


@dataclass
class ReplyAudio:
    """The phrases of one reply and where their audio lies on the turn's timeline."""

    phrases: list[SpokenPhrase] = field(default_factory=list)
    total_samples: int = 0

    def begin_phrase(self, text: str) -> SpokenPhrase:
        phrase = SpokenPhrase(text, self.total_samples, self.total_samples)
        self.phrases.append(phrase)
        return phrase

    def add_samples(self, phrase: SpokenPhrase, count: int) -> None:
        self.total_samples += count
        phrase.end_sample = self.total_samples

    def cut_by_guard(self, phrase: SpokenPhrase, sample_rate_hz: int) -> None:
        """The TTS length guard ended `phrase`: keep as said what its audio had time for."""
        audio_s = (phrase.end_sample - phrase.start_sample) / sample_rate_hz
        prefix = spoken_prefix(phrase.text, audio_s * SPOKEN_UNITS_PER_S)
        if prefix != phrase.text:
            phrase.said = prefix.rstrip() + INTERRUPTED_MARK

    def heard_text(self, played_samples: int) -> str:
        """The text heard after `played_samples` samples."""
        parts: list[str] = []
        for phrase in self.phrases:
            if phrase.end_sample <= phrase.start_sample:
                continue
            if played_samples >= phrase.end_sample:
                parts.append(phrase.spoken)
                continue
            if played_samples > phrase.start_sample:
                fraction = (played_samples - phrase.start_sample) / (phrase.end_sample - phrase.start_sample)
                text = phrase.text if phrase.said is None else phrase.said.removesuffix(INTERRUPTED_MARK)
                words = text.split()
                if len(words) <= 1:
                    # CJK text has no spaces: cut by characters instead.
                    cut = text[: int(len(text) * fraction)]
                else:
                    cut = " ".join(words[: int(len(words) * fraction)])
                if cut:
                    parts.append(cut)
            break
        return join_phrases(parts)
