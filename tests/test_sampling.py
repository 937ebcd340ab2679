"""The sampler: filters, per-process reproducibility and suspend/resume of the stream."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmos.drivers.sampling import SamplerState, apply_repetition_penalty, sample
from llmos.syscalls.sampling import SamplingParams

try:
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor
except ImportError:  # older layouts export it from the package root
    from transformers import RepetitionPenaltyLogitsProcessor

GREEDY = SamplingParams(temperature=0.0)


def draw_many(logits: torch.Tensor, params: SamplingParams, seed: int, num_draws: int) -> list[int]:
    """``num_draws`` tokens for one process that sees the same logits [V] every step."""
    state = SamplerState(seed)
    return [sample(logits[None], [params], [state], [[]])[0] for _ in range(num_draws)]


def chi_square(counts: torch.Tensor, expected_probs: torch.Tensor) -> float:
    """Pearson's statistic of ``counts`` against ``expected_probs`` (same support)."""
    expected = expected_probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def token_counts(tokens: list[int], vocab_size: int) -> torch.Tensor:
    return torch.bincount(torch.tensor(tokens), minlength=vocab_size).double()


logit_rows = st.lists(st.floats(-8.0, 8.0, allow_nan=False, width=32), min_size=2, max_size=40).map(
    lambda xs: torch.tensor(xs, dtype=torch.float32)
)


# --- greedy -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_greedy_is_argmax(dtype: torch.dtype) -> None:
    logits = torch.randn(8, 1000, generator=torch.Generator().manual_seed(0)).to(dtype)
    states = [SamplerState(i) for i in range(8)]
    tokens = sample(logits, [GREEDY] * 8, states, [[]] * 8)
    assert tokens == logits.float().argmax(dim=-1).tolist()


def test_greedy_rows_in_a_mixed_batch_take_argmax() -> None:
    logits = torch.randn(4, 500, generator=torch.Generator().manual_seed(1))
    params = [GREEDY, SamplingParams(temperature=1.0), GREEDY, SamplingParams(top_k=5)]
    tokens = sample(logits, params, [SamplerState(i) for i in range(4)], [[]] * 4)
    assert tokens[0] == int(logits[0].argmax())
    assert tokens[2] == int(logits[2].argmax())


def test_top_k_one_equals_greedy() -> None:
    logits = torch.randn(16, 300, generator=torch.Generator().manual_seed(2)) * 4
    params = [SamplingParams(temperature=1.5, top_k=1)] * 16
    tokens = sample(logits, params, [SamplerState(i) for i in range(16)], [[]] * 16)
    assert tokens == logits.argmax(dim=-1).tolist()


def test_sample_leaves_logits_untouched() -> None:
    logits = torch.randn(3, 100, generator=torch.Generator().manual_seed(3))
    before = logits.clone()
    params = [SamplingParams(temperature=0.0, repetition_penalty=1.3)] * 3
    sample(logits, params, [SamplerState(i) for i in range(3)], [[1, 2, 3]] * 3)
    assert torch.equal(logits, before)


# --- reproducibility --------------------------------------------------------


def test_same_seed_same_tokens_whatever_the_batch() -> None:
    """A process's tokens depend on its seed and logits, not on its neighbours or row."""
    vocab_size, num_steps = 2000, 30
    gen = torch.Generator().manual_seed(4)
    mine = [torch.randn(vocab_size, generator=gen) * 2 for _ in range(num_steps)]
    params = SamplingParams(temperature=0.9, top_p=0.95, seed=1234)

    alone = SamplerState(params.seed)
    expected = [sample(row[None], [params], [alone], [[]])[0] for row in mine]

    neighbours = [GREEDY, SamplingParams(seed=7), SamplingParams(top_k=3, min_p=0.1)]
    for row_index in range(len(neighbours) + 1):
        others = [SamplerState(p.seed) for p in neighbours]
        state = SamplerState(params.seed)
        got = []
        for step in range(num_steps):
            batch_params = list(neighbours)
            batch_params.insert(row_index, params)
            states = list(others)
            states.insert(row_index, state)
            rows = [torch.randn(vocab_size, generator=gen) for _ in neighbours]
            rows.insert(row_index, mine[step])
            tokens = sample(torch.stack(rows), batch_params, states, [[]] * len(states))
            got.append(tokens[row_index])
        assert got == expected, f"row {row_index}"


def test_different_seeds_diverge() -> None:
    flat = torch.zeros(1000)
    params = SamplingParams(temperature=1.0)
    assert draw_many(flat, params, seed=1, num_draws=20) != draw_many(
        flat, params, seed=2, num_draws=20
    )


def test_seeds_2_to_the_32_apart_diverge() -> None:
    flat = torch.zeros(1000)
    params = SamplingParams(temperature=1.0)
    assert draw_many(flat, params, seed=5, num_draws=20) != draw_many(
        flat, params, seed=5 + 2**32, num_draws=20
    )


def test_unseeded_states_differ() -> None:
    assert SamplerState().get_state() != SamplerState().get_state()


def test_snapshot_and_restore_continue_the_stream() -> None:
    logits = torch.randn(1, 5000, generator=torch.Generator().manual_seed(5))
    params = [SamplingParams(temperature=1.2, top_k=200)]
    state = SamplerState(99)
    for _ in range(10):
        sample(logits, params, [state], [[]])
    snapshot = state.get_state()
    assert isinstance(snapshot, bytes)
    expected = [sample(logits, params, [state], [[]])[0] for _ in range(20)]

    resumed = SamplerState(seed=0)
    resumed.set_state(snapshot)
    assert [sample(logits, params, [resumed], [[]])[0] for _ in range(20)] == expected


# --- filters ----------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(logits=logit_rows, top_k=st.integers(1, 10), seed=st.integers(0, 2**32))
def test_top_k_restricts_support(logits: torch.Tensor, top_k: int, seed: int) -> None:
    params = SamplingParams(temperature=2.0, top_k=top_k)
    token = sample(logits[None], [params], [SamplerState(seed)], [[]])[0]
    scaled = logits / params.temperature  # what the sampler ranks, ties from underflow included
    # Ties at the k-th value may go either way; strictly better tokens may not.
    assert int((scaled > scaled[token]).sum()) < top_k


@settings(max_examples=200, deadline=None)
@given(
    logits=logit_rows,
    top_p=st.floats(0.05, 0.99),
    temperature=st.floats(0.3, 3.0),
    seed=st.integers(0, 2**32),
)
def test_top_p_samples_inside_the_nucleus(
    logits: torch.Tensor, top_p: float, temperature: float, seed: int
) -> None:
    params = SamplingParams(temperature=temperature, top_p=top_p)
    token = sample(logits[None], [params], [SamplerState(seed)], [[]])[0]
    probs = torch.softmax(logits.double() / temperature, dim=0)
    mass_ranked_above = float(probs[probs > probs[token]].sum())
    assert mass_ranked_above < top_p + 1e-5


def test_top_p_keeps_at_least_one_token() -> None:
    logits = torch.tensor([5.0, 1.0, 0.0, -1.0])
    params = SamplingParams(temperature=1.0, top_p=1e-6)
    assert set(draw_many(logits, params, seed=0, num_draws=50)) == {0}


def test_top_p_widens_past_its_first_guess() -> None:
    """A flat distribution's nucleus spans most of the vocabulary, not a first few hundred."""
    vocab_size = 5000
    params = SamplingParams(temperature=1.0, top_p=0.9)
    tokens = draw_many(torch.zeros(vocab_size), params, seed=3, num_draws=400)
    assert max(tokens) > 1000


@settings(max_examples=200, deadline=None)
@given(logits=logit_rows, min_p=st.floats(0.01, 1.0), seed=st.integers(0, 2**32))
def test_min_p_keeps_tokens_near_the_top(logits: torch.Tensor, min_p: float, seed: int) -> None:
    params = SamplingParams(temperature=1.0, min_p=min_p)
    token = sample(logits[None], [params], [SamplerState(seed)], [[]])[0]
    probs = torch.softmax(logits.double(), dim=0)
    assert probs[token] >= min_p * probs.max() * (1 - 1e-5)


def test_min_p_drops_unlikely_tokens() -> None:
    # Probabilities ~ [0.64, 0.24, 0.09, 0.03]: min_p 0.2 keeps the first two.
    logits = torch.tensor([3.0, 2.0, 1.0, 0.0])
    params = SamplingParams(temperature=1.0, min_p=0.2)
    assert set(draw_many(logits, params, seed=0, num_draws=300)) == {0, 1}


# --- repetition penalty -----------------------------------------------------


@pytest.mark.parametrize("penalty", [0.7, 1.3, 2.0])
def test_repetition_penalty_matches_hugging_face(penalty: float) -> None:
    gen = torch.Generator().manual_seed(6)
    row = torch.randn(300, generator=gen) * 3
    history = [5, 17, 17, 299, 0, 5, 123, 42, 42, 42]
    processor = RepetitionPenaltyLogitsProcessor(penalty=penalty)
    expected = processor(torch.tensor([history]), row[None].clone())[0]
    assert torch.equal(apply_repetition_penalty(row, history, penalty), expected)


def test_repetition_penalty_ignores_ids_past_the_vocabulary() -> None:
    row = torch.tensor([1.0, -1.0, 2.0])
    assert torch.equal(apply_repetition_penalty(row, [1, 7], 2.0), torch.tensor([1.0, -2.0, 2.0]))


def test_greedy_argmax_comes_after_the_penalty() -> None:
    logits = torch.tensor([[4.0, 3.0, 1.0]])
    params = [SamplingParams(temperature=0.0, repetition_penalty=2.0)]
    assert sample(logits, params, [SamplerState(0)], [[0]]) == [1]
    assert sample(logits, params, [SamplerState(0)], [[2]]) == [0]


# --- distributions ----------------------------------------------------------

# Critical value of chi-square with 4 degrees of freedom at p = 0.001.
CHI2_4DOF_P001 = 18.47


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_temperature_shapes_the_distribution(temperature: float) -> None:
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0])
    tokens = draw_many(logits, SamplingParams(temperature=temperature), seed=11, num_draws=6000)
    expected = torch.softmax(logits.double() / temperature, dim=0)
    assert chi_square(token_counts(tokens, 5), expected) < CHI2_4DOF_P001


def test_filters_renormalise_what_they_keep() -> None:
    """top_k 6 then top_p 0.9 on the survivors leaves five tokens, drawn in proportion."""
    logits = torch.tensor([2.0, 1.6, 1.2, 0.8, 0.4, 0.0, -3.0, -3.0])
    params = SamplingParams(temperature=1.0, top_k=6, top_p=0.9)
    tokens = draw_many(logits, params, seed=12, num_draws=6000)
    counts = token_counts(tokens, 8)
    assert counts[5:].sum() == 0
    expected = torch.softmax(logits[:5].double(), dim=0)
    assert chi_square(counts[:5], expected) < CHI2_4DOF_P001


def test_draw_never_lands_on_a_filtered_token() -> None:
    """Masked tokens at the end of the vocabulary carry zero mass and are never drawn."""
    logits = torch.tensor([0.0, 0.0] + [-30.0] * 50)
    params = SamplingParams(temperature=1.0, min_p=0.5)
    assert set(draw_many(logits, params, seed=13, num_draws=500)) == {0, 1}


def test_empty_batch() -> None:
    assert sample(torch.empty(0, 10), [], [], []) == []


def test_mass_is_not_lost_in_a_large_vocabulary() -> None:
    vocab_size = 49152
    logits = torch.zeros(vocab_size)
    tokens = draw_many(logits, SamplingParams(temperature=1.0), seed=14, num_draws=2000)
    # Uniform over the vocabulary: the mean token id sits near the middle.
    assert math.isclose(sum(tokens) / len(tokens), vocab_size / 2, rel_tol=0.05)
