"""A virtual session clock: code under test sleeps on it, the test moves it forward.

Sources and sinks take `clock` and `sleep`; giving them this clock's `now` and `sleep`
lets a test run minutes of real-time pacing in milliseconds, deterministically, and
check exactly when each block was released.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class VirtualClock:
    def __init__(self, start_s: float = 100.0) -> None:
        self.now_s = start_s
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.now_s

    async def sleep(self, delay_s: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now_s + max(0.0, delay_s), next(self._seq), future))
        await future

    async def run_until(self, t_s: float) -> None:
        """Advance to `t_s`, waking sleepers in time order and letting each run."""
        while True:
            await _settle()
            if not self._sleepers or self._sleepers[0][0] > t_s:
                break
            wake_s, _, future = heapq.heappop(self._sleepers)
            self.now_s = max(self.now_s, wake_s)
            if not future.done():
                future.set_result(None)
        self.now_s = max(self.now_s, t_s)
        await _settle()


async def _settle(rounds: int = 20) -> None:
    """Let every task that is ready run until it blocks again (no time passes)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
