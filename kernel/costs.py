"""The cost model the scheduler uses to choose how to preempt: swap or recompute.

Paging a victim out costs its bytes over the measured copy bandwidth (and as
much again to page it back in); dropping its K/V costs its tokens over the
measured prefill rate. Both rates are running averages of what the engine
observes, starting from conservative guesses.
"""

from __future__ import annotations

from dataclasses import dataclass

SMOOTHING = 0.2


@dataclass
class CostModel:
    """Measured copy bandwidth (bytes/s) and prefill rate (tokens/s)."""

    page_bytes: int
    copy_bandwidth: float = 2e9
    prefill_rate: float = 2e3

    def observe_copy(self, num_bytes: int, seconds: float) -> None:
        if num_bytes > 0 and seconds > 0:
            self.copy_bandwidth = _blend(self.copy_bandwidth, num_bytes / seconds)

    def observe_prefill(self, num_tokens: int, seconds: float) -> None:
        if num_tokens > 0 and seconds > 0:
            self.prefill_rate = _blend(self.prefill_rate, num_tokens / seconds)

    def swap_seconds(self, num_pages: int) -> float:
        """Out and back in."""
        return 2 * num_pages * self.page_bytes / self.copy_bandwidth

    def recompute_seconds(self, num_tokens: int) -> float:
        return num_tokens / self.prefill_rate


def _blend(old: float, new: float) -> float:
    return (1 - SMOOTHING) * old + SMOOTHING * new
