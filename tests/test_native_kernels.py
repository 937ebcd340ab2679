"""The native CPU kernels against references: paged decode attention (dense float64),
the fused residual-add RMSNorm and rotary + KV store (the torch ops they replace), and
the build seam."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmos.drivers.torch import native
from llmos.drivers.torch.native import NativeDecode, decode_kernel, load_library
from llmos.syscalls.errors import InvalidArgument

CPU = torch.device("cpu")


def kernel(dtype: torch.dtype, window: int | None = None) -> NativeDecode:
    found = decode_kernel("native", CPU, dtype, window)
    assert found is not None
    return found


def reference(
    q: torch.Tensor,
    cache: torch.Tensor,
    tables: list[list[int]],
    lens: list[int],
    page: int,
    window: int | None,
) -> torch.Tensor:
    """Gather each row's context densely and attend in float64."""
    heads, kv_heads = q.shape[1], cache.shape[1]
    out = []
    for row, (table, length) in enumerate(zip(tables, lens, strict=True)):
        slots = torch.tensor([table[p // page] * page + p % page for p in range(length)])
        if window is not None:
            slots = slots[max(0, length - window) :]
        k = cache[0][:, slots].double().repeat_interleave(heads // kv_heads, 0)  # [h, n, d]
        v = cache[1][:, slots].double().repeat_interleave(heads // kv_heads, 0)
        scores = (k @ q[row].double().unsqueeze(-1)).squeeze(-1) * q.shape[-1] ** -0.5
        out.append((scores.softmax(-1).unsqueeze(1) @ v).squeeze(1))  # [h, d]
    return torch.stack(out)


def case(
    dtype: torch.dtype,
    lens: list[int],
    head_dim: int = 64,
    heads: int = 9,
    kv_heads: int = 3,
    page: int = 16,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, list[list[int]]]:
    """Random queries and pool, and scrambled block tables covering ``lens``."""
    gen = torch.Generator().manual_seed(seed)
    need = sum(-(-n // page) for n in lens)
    num_pages = need + 3
    cache = torch.randn(2, kv_heads, num_pages * page, head_dim, generator=gen).to(dtype)
    frames = list(range(num_pages))
    random.Random(seed).shuffle(frames)
    tables = []
    for n in lens:
        tables.append([frames.pop() for _ in range(-(-n // page))])
    q = torch.randn(len(lens), heads, head_dim, generator=gen).to(dtype)
    return q, cache, tables


def call(
    k: NativeDecode,
    q: torch.Tensor,
    cache: torch.Tensor,
    tables: list[list[int]],
    lens: list[int],
    page: int,
) -> torch.Tensor:
    width = max(len(t) for t in tables)
    padded = torch.tensor([t + [0] * (width - len(t)) for t in tables], dtype=torch.int32)
    return k(q, cache, padded, torch.tensor(lens, dtype=torch.int32), page)


@pytest.mark.parametrize("head_dim", [64, 128, 24])  # 24: the scalar (non-multiple-of-16) path
def test_float32_matches_reference(head_dim: int) -> None:
    lens = [1, 15, 16, 17, 100, 333]
    q, cache, tables = case(torch.float32, lens, head_dim=head_dim)
    got = call(kernel(torch.float32), q, cache, tables, lens, 16)
    want = reference(q, cache, tables, lens, 16, None)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


def test_bfloat16_matches_reference_to_its_rounding() -> None:
    lens = [3, 64, 250, 701]
    q, cache, tables = case(torch.bfloat16, lens)
    got = call(kernel(torch.bfloat16), q, cache, tables, lens, 16)
    want = reference(q, cache, tables, lens, 16, None)
    assert got.dtype == torch.bfloat16
    # Computed in float32 and rounded once: within one bf16 ulp of the exact result.
    torch.testing.assert_close(got.double(), want, atol=1e-2, rtol=1e-2)


def test_sliding_window_reads_only_the_last_keys() -> None:
    lens = [5, 20, 47]
    q, cache, tables = case(torch.float32, lens, page=4)
    got = call(kernel(torch.float32, window=8), q, cache, tables, lens, 4)
    torch.testing.assert_close(
        got.double(), reference(q, cache, tables, lens, 4, 8), atol=1e-5, rtol=1e-5
    )


@settings(max_examples=25, deadline=None)
@given(
    lens=st.lists(st.integers(1, 90), min_size=1, max_size=6),
    page=st.sampled_from([1, 4, 16]),
    groups=st.sampled_from([(4, 4), (8, 2), (6, 1)]),
    seed=st.integers(0, 1000),
)
def test_any_lengths_pages_and_groups(
    lens: list[int], page: int, groups: tuple[int, int], seed: int
) -> None:
    heads, kv_heads = groups
    q, cache, tables = case(torch.float32, lens, 32, heads, kv_heads, page, seed)
    got = call(kernel(torch.float32), q, cache, tables, lens, page)
    torch.testing.assert_close(
        got.double(), reference(q, cache, tables, lens, page, None), atol=1e-5, rtol=1e-5
    )


def test_choices_and_unsupported_dtypes() -> None:
    assert decode_kernel("torch", CPU, torch.float32, None) is None
    assert decode_kernel("auto", CPU, torch.float16, None) is None  # no fp16 kernel: torch path
    with pytest.raises(InvalidArgument, match="float32 or bfloat16"):
        decode_kernel("native", CPU, torch.float16, None)
    with pytest.raises(InvalidArgument, match="auto, native or torch"):
        decode_kernel("fast", CPU, torch.float32, None)


def test_no_compiler_falls_back_to_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    load_library.cache_clear()
    try:
        assert load_library(tmp_path) is None
        assert decode_kernel("auto", CPU, torch.float32, None, tmp_path) is None
        with pytest.raises(InvalidArgument, match="could not be built"):
            decode_kernel("native", CPU, torch.float32, None, tmp_path)
        assert not list(tmp_path.glob("*.so"))  # no half-written library left behind
    finally:
        load_library.cache_clear()


def test_build_is_cached_by_source_and_cpu(tmp_path: Path) -> None:
    load_library.cache_clear()
    try:
        assert load_library(tmp_path) is not None
        built = native.library_path(tmp_path)
        assert built.exists() and built.parent == tmp_path
        stamp = built.stat().st_mtime_ns
        load_library.cache_clear()
        assert load_library(tmp_path) is not None
        assert built.stat().st_mtime_ns == stamp  # loaded, not rebuilt
    finally:
        load_library.cache_clear()


def ops() -> native.FusedOps:
    found = native.fused_ops("native", CPU, torch.float32)
    assert found is not None
    return found


def reference_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """The transformers RMSNorm: float32 statistics, cast back, then the weight."""
    normed = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)
    return weight * normed.to(x.dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("dim", [576, 37])  # 37: the tail past whole 16-lane blocks
def test_add_rms_norm_matches_the_reference(dtype: torch.dtype, dim: int) -> None:
    gen = torch.Generator().manual_seed(dim)
    x = torch.randn(5, dim, generator=gen).to(dtype)
    delta = torch.randn(5, dim, generator=gen).to(dtype)
    weight = torch.randn(dim, generator=gen).to(dtype)
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 2e-2, "rtol": 2e-2}
    torch.testing.assert_close(
        ops().add_rms_norm(x.clone(), None, weight, 1e-5), reference_norm(x, weight, 1e-5), **tol
    )
    residual = x.clone()
    out = ops().add_rms_norm(residual, delta, weight, 1e-5)
    torch.testing.assert_close(
        residual, x + delta
    )  # the add happened in place, rounded as torch rounds
    torch.testing.assert_close(out, reference_norm(x + delta, weight, 1e-5), **tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rope_store_matches_rotary_then_store(dtype: torch.dtype) -> None:
    from llmos.drivers.torch.rope import apply_rotary

    heads, kv_heads, d, tokens, slots_total = 4, 2, 16, 20, 64
    gen = torch.Generator().manual_seed(7)
    qkv = torch.randn(tokens, (heads + 2 * kv_heads) * d, generator=gen).to(dtype)
    angles = torch.outer(torch.arange(100.0), torch.rand(d // 2, generator=gen))
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()
    positions = torch.randint(0, 100, (tokens,), generator=gen)
    slots = torch.randperm(slots_total, generator=gen)[:tokens]
    cache = torch.zeros(2, kv_heads, slots_total, d, dtype=dtype)
    mine = qkv.clone()
    ops().rope_store(mine, heads, kv_heads, (cos, sin), positions, slots, cache)
    view = qkv.view(tokens, -1, d).float()
    rotated = apply_rotary(
        view[:, : heads + kv_heads], cos[positions].unsqueeze(1), sin[positions].unsqueeze(1)
    )
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 2e-2, "rtol": 2e-2}
    got = mine.view(tokens, -1, d)
    torch.testing.assert_close(got[:, : heads + kv_heads].float(), rotated, **tol)
    torch.testing.assert_close(
        got[:, heads + kv_heads :], qkv.view(tokens, -1, d)[:, heads + kv_heads :]
    )
    torch.testing.assert_close(cache[0][:, slots].transpose(0, 1), got[:, heads : heads + kv_heads])
    torch.testing.assert_close(cache[1][:, slots].transpose(0, 1), got[:, heads + kv_heads :])
