"""The conversation as the LLM sees it: the system prompt and the last few exchanges.

What is stored for the assistant is what the user actually heard. After a barge-in that
is the played part of the reply plus a marker, so the LLM knows it was cut off and does
not assume the user heard the rest. Exchanges are kept as pairs, so the messages always
alternate user/assistant (some local chat templates refuse anything else).
"""

from __future__ import annotations

from collections import deque

# Appended to a reply the user interrupted; also stands for a reply cut before any audio.
INTERRUPTED_MARKER = "…"


class History:
    """Bounded user/assistant exchanges of one session."""

    def __init__(self, system_prompt: str, max_turns: int) -> None:
        if max_turns < 0:
            raise ValueError(f"max_turns must be >= 0, got {max_turns}")
        self.system_prompt = system_prompt
        self.max_turns = max_turns
        self._turns: deque[tuple[str, str]] = deque(maxlen=max_turns or None)

    def messages(self, user_text: str) -> list[dict[str, str]]:
        """The request for a new user message: system, past exchanges, the new message."""
        messages: list[dict[str, str]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        for user, assistant in self.turns:
            messages.append({"role": "user", "content": user})
            messages.append({"role": "assistant", "content": assistant})
        messages.append({"role": "user", "content": user_text})
        return messages

    def add(self, user_text: str, assistant_text: str, *, interrupted: bool = False) -> None:
        """Record an exchange; `assistant_text` is what was played, `interrupted` marks a barge-in."""
        if self.max_turns == 0:
            return
        spoken = assistant_text.strip()
        if interrupted:
            spoken = f"{spoken}{INTERRUPTED_MARKER}" if spoken else INTERRUPTED_MARKER
        elif not spoken:
            spoken = INTERRUPTED_MARKER  # nothing was heard (e.g. the LLM failed): keep the pair
        self._turns.append((user_text.strip(), spoken))

    @property
    def turns(self) -> list[tuple[str, str]]:
        """The kept (user, assistant) exchanges, oldest first."""
        return list(self._turns)

    def clear(self) -> None:
        self._turns.clear()

    def __len__(self) -> int:
        return len(self._turns)
