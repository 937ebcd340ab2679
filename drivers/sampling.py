"""Token sampling: one batch of logits in, one token per process out.

Tensor code only; which parameters a process runs with is the kernel's
business. Every process draws from its own generator, so a seed gives the same
tokens whatever else shares the batch and whichever row the process sits in.

Per row, in order: repetition penalty, then greedy argmax or temperature,
top-k, top-p (nucleus), min-p and an inverse-CDF draw.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence

import torch

from llmos.syscalls.sampling import SamplingParams

# torch's CPU generator seeds its Mersenne Twister from the low 32 bits only.
_SEED_BITS = 32
# Candidates tried before a nucleus search falls back to ranking more of the
# vocabulary; most nuclei of a trained model are far smaller than this.
_NUCLEUS_FIRST_GUESS = 256
_NUCLEUS_GROWTH = 4


class SamplerState:
    """One process's random stream.

    ``get_state``/``set_state`` snapshot and restore it as bytes, so a process
    suspended to disk resumes drawing exactly where it stopped.
    """

    def __init__(self, seed: int | None = None) -> None:
        # Unseeded processes get fresh entropy, so two of them never share a stream
        # by accident; the seed is kept so a caller can report and replay it.
        self.seed = secrets.randbits(_SEED_BITS) if seed is None else seed
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(_fold_seed(self.seed))

    @classmethod
    def from_params(cls, params: SamplingParams) -> SamplerState:
        """The state a new process starts with, seeded from ``params.seed``."""
        return cls(params.seed)

    def get_state(self) -> bytes:
        """Snapshot of the generator, to store with a suspended process."""
        return bytes(self.generator.get_state().numpy())

    def set_state(self, state: bytes) -> None:
        """Restore a snapshot taken by :meth:`get_state`."""
        # A bytearray, because torch warns when it wraps a read-only buffer.
        self.generator.set_state(torch.frombuffer(bytearray(state), dtype=torch.uint8))


def _fold_seed(seed: int) -> int:
    """Fold a user seed into the 32 bits the generator actually uses.

    Plain truncation would make seeds 2**32 apart share a stream; XOR-folding
    the high word in leaves seeds below 2**32 unchanged.
    """
    seed %= 2**64  # negative seeds wrap, as torch's own manual_seed does
    return (seed ^ (seed >> _SEED_BITS)) & ((1 << _SEED_BITS) - 1)


def sample(
    logits: torch.Tensor,
    params: list[SamplingParams],
    states: list[SamplerState],
    histories: list[Sequence[int]],
) -> list[int]:
    """Pick the next token of every row of ``logits`` ([B, V], any float dtype).

    Row ``i`` belongs to the process with ``params[i]``, ``states[i]`` and
    token history ``histories[i]`` (prompt + generated, used only by the
    repetition penalty). ``logits`` is not modified.
    """
    num_rows = logits.shape[0]
    assert len(params) == len(states) == len(histories) == num_rows
    if all(p.is_greedy and p.repetition_penalty == 1.0 for p in params):
        # Upcasting cannot reorder values, so argmax on the raw dtype is exact.
        return [int(t) for t in logits.argmax(dim=-1)]
    return [
        _sample_row(logits[i].float(), params[i], states[i], histories[i]) for i in range(num_rows)
    ]


def _sample_row(
    row: torch.Tensor, params: SamplingParams, state: SamplerState, history: Sequence[int]
) -> int:
    """The next token of one process; ``row`` is its float32 logits [V]."""
    if params.repetition_penalty != 1.0 and len(history) > 0:
        row = apply_repetition_penalty(row, history, params.repetition_penalty)
    if params.is_greedy:
        return int(row.argmax())
    values, token_ids = _candidates(row / params.temperature, params)
    pick = _draw(torch.softmax(values, dim=0), state.generator)
    return pick if token_ids is None else int(token_ids[pick])


def apply_repetition_penalty(
    row: torch.Tensor, history: Sequence[int], penalty: float
) -> torch.Tensor:
    """Penalise every token seen in ``history``, as Hugging Face does.

    Positive logits are divided by ``penalty``, negative ones multiplied, once
    per distinct token. Ids past the vocabulary cannot be generated and are
    skipped. Returns a new tensor; ``row`` ([V]) is left as it was.
    """
    vocab_size = row.shape[0]
    token_ids = torch.unique(torch.as_tensor(history, dtype=torch.long))
    token_ids = token_ids[token_ids < vocab_size]
    seen = row[token_ids]
    penalised = torch.where(seen < 0, seen * penalty, seen / penalty)
    return row.index_put((token_ids,), penalised)


def _candidates(
    scaled: torch.Tensor, params: SamplingParams
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Temperature-scaled logits that survive top-k, top-p and min-p.

    Returns ``(values, token_ids)``: either values sorted descending with their
    ids, or, when no ranking filter is on, the whole vocabulary in token order
    (filtered-out entries at -inf) with ``token_ids`` None, which spares a sort.
    """
    vocab_size = scaled.shape[0]
    if 0 < params.top_k < vocab_size:
        # top_p then applies to the renormalised top-k, as in Hugging Face.
        values, token_ids = torch.topk(scaled, params.top_k)
        if params.top_p < 1.0:
            probs = torch.softmax(values, dim=0)
            num_kept = _nucleus_size(probs, params.top_p) or params.top_k
            values, token_ids = values[:num_kept], token_ids[:num_kept]
    elif params.top_p < 1.0:
        values, token_ids = _nucleus(scaled, params.top_p)
    else:
        return _min_p_mask(scaled, params.min_p), None
    if params.min_p > 0.0:
        num_kept = int((values >= values[0] + math.log(params.min_p)).sum())
        values, token_ids = values[:num_kept], token_ids[:num_kept]
    return values, token_ids


def _nucleus(scaled: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The smallest top-ranked set holding ``top_p`` of the mass, sorted descending.

    Ranks a few hundred candidates first and widens only when the nucleus runs
    past them, so a peaked distribution never pays for a full-vocabulary sort.
    """
    vocab_size = scaled.shape[0]
    log_total = torch.logsumexp(scaled, dim=0)
    num_ranked = min(_NUCLEUS_FIRST_GUESS, vocab_size)
    while True:
        values, token_ids = torch.topk(scaled, num_ranked)
        num_kept = _nucleus_size(torch.exp(values - log_total), top_p)
        if num_kept is not None or num_ranked == vocab_size:
            num_kept = num_kept or num_ranked
            return values[:num_kept], token_ids[:num_kept]
        num_ranked = min(num_ranked * _NUCLEUS_GROWTH, vocab_size)


def _nucleus_size(probs: torch.Tensor, top_p: float) -> int | None:
    """How many leading ``probs`` (sorted descending) the nucleus keeps.

    A token is kept while the mass ranked above it is below ``top_p``, so the
    top token always is. None when these probs do not reach ``top_p``.
    """
    cumulative = torch.cumsum(probs, dim=0)
    if float(cumulative[-1]) < top_p:
        return None
    return int((cumulative < top_p).sum()) + 1


def _min_p_mask(scaled: torch.Tensor, min_p: float) -> torch.Tensor:
    """Set to -inf every logit whose probability is below ``min_p`` times the top one."""
    if min_p == 0.0:
        return scaled
    # p_i >= min_p * p_max  <=>  logit_i >= logit_max + log(min_p): no softmax needed.
    threshold = scaled.max() + math.log(min_p)
    return scaled.masked_fill(scaled < threshold, -math.inf)


def _draw(probs: torch.Tensor, generator: torch.Generator) -> int:
    """Index drawn from ``probs`` [N] by inverse CDF.

    One uniform per token, so a stream advances the same whatever the filters;
    the CDF is summed in float64 so large vocabularies do not round it.
    """
    cdf = torch.cumsum(probs, dim=0, dtype=torch.float64)
    total = cdf[-1:]
    target = torch.rand(1, generator=generator, dtype=torch.float64) * total
    index = int(torch.searchsorted(cdf, target, right=True))
    # A target rounded up to the total would land past the last token with mass.
    last_with_mass = int(torch.searchsorted(cdf, total))
    return min(index, last_with_mass, probs.shape[0] - 1)
