"""What the user actually heard of a reply, from the samples the speaker played.

A reply is a sequence of phrases, each with a span of samples on the turn's audio
timeline. After a barge-in only the played part belongs in the history: whole phrases
that finished, plus the words of the phrase that was cut, in proportion to how much of
its audio was played.
"""

from __future__ import annotations

from dataclasses import dataclass, field

INTERRUPTED_MARK = "…"


@dataclass
class SpokenPhrase:
    text: str
    start_sample: int
    end_sample: int  # grows while the phrase's audio is generated


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

    def heard_text(self, played_samples: int) -> str:
        """The text heard after `played_samples` samples."""
        parts: list[str] = []
        for phrase in self.phrases:
            if phrase.end_sample <= phrase.start_sample:
                continue
            if played_samples >= phrase.end_sample:
                parts.append(phrase.text)
                continue
            if played_samples > phrase.start_sample:
                fraction = (played_samples - phrase.start_sample) / (phrase.end_sample - phrase.start_sample)
                words = phrase.text.split()
                if len(words) <= 1:
                    # CJK text has no spaces: cut by characters instead.
                    cut = phrase.text[: int(len(phrase.text) * fraction)]
                else:
                    cut = " ".join(words[: int(len(words) * fraction)])
                if cut:
                    parts.append(cut)
            break
        return _join(parts)


def _join(parts: list[str]) -> str:
    return " ".join(p.strip() for p in parts if p.strip())
