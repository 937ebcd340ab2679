"""The notes under bench/memory.py's table: baselines, fork scaling, page moves, cache hits."""

from __future__ import annotations

import statistics
from typing import Any

BASELINES = (
    "fork: copying the process's KV bytes (torch.empty_like(x).copy_(x))",
    "forks: the frames of the one process forked",
    "page: torch.empty_like(x).copy_(x) of the same bytes",
    "resume: reading the same bytes from a file and copying them into a tensor",
    "fragmentation: each request reserving prompt + max_tokens slots when admitted",
    "prefix cache: the same engine with prefix_cache=False",
)


def print_notes(report: dict[str, Any]) -> None:
    """The baselines, then a note for each section that ran."""
    print("\nbaselines:")
    for line in BASELINES:
        print(f"  {line}")
    notes = (fork_notes, swap_notes, cow_notes, workload_notes)
    for key, note in zip(("fork_scaling", "swap", "cow", "workloads"), notes, strict=True):
        if key in report:
            note(report)


def fork_notes(report: dict[str, Any]) -> None:
    """Fork time per context length, and its fit per page."""
    print("fork scaling:  tokens  pages  us/fork  us/page")
    scaling = report["fork_scaling"]
    for s in scaling:
        print(
            f"              {s['tokens']:>6} {s['pages']:>6} {s['fork_us']:>8.1f} "
            f"{s['us_per_page']:>8.2f}"
        )
    if len(scaling) > 1:
        fit = statistics.linear_regression(
            [s["pages"] for s in scaling], [s["fork_us"] for s in scaling]
        )
        print(f"              fit: {fit.intercept:.1f} us + {fit.slope:.3f} us per page")


def swap_notes(report: dict[str, Any]) -> None:
    """The copy baselines' speeds, the page faults of each move, the resume phases."""
    swap = report["swap"]
    fresh, warm = (swap["bytes"] / swap[key] / 1e9 for key in ("copy_seconds", "warm_copy_seconds"))
    print(
        f"page copies: torch.empty_like(x).copy_(x) {fresh:.2f} GB/s; into memory written "
        f"before {warm:.2f} GB/s"
    )
    warm_ratios = ", ".join(
        f"{way} {swap['warm_copy_seconds'] / seconds:.2f}x"
        for way, seconds in swap["seconds"].items()
    )
    print(f"page moves against the copy into memory written before: {warm_ratios}")
    moves = ", ".join(f"{way} {num:.0f}" for way, num in swap["faults"].items())
    print(
        f"page faults per move: {moves}; per baseline copy {swap['copy_faults']} "
        f"({swap['bytes'] // 4096} 4-KiB pages in the bytes moved)"
    )
    phases = ", ".join(f"{k} {v:.1f} ms" for k, v in report["hibernate"]["phase_ms"].items())
    print(f"resume from an image, medians: {phases}")


def cow_notes(report: dict[str, Any]) -> None:
    """The frames of the forked family against private copies."""
    cow = report["cow"]
    print(
        f"forks: {cow['frames_family']} frames (allocator.num_used grew by "
        f"{cow['num_used_delta']}) against {cow['private_copies']} for private copies"
    )


def workload_notes(report: dict[str, Any]) -> None:
    """Each engine's rates and cache hits, per kind of workload."""
    for name in ("on", "off"):
        for kind in ("distinct", "shared", "kernel_only"):
            runs = report["workloads"][name][kind]
            page_hits = statistics.median(r["page_hit_rate"] for r in runs)
            token_hits = statistics.median(r["cached_token_share"] for r in runs)
            rates = ", ".join(f"{r['tok_s']:.1f}" for r in runs)
            print(
                f"prefix cache {name:>3}, {kind:<11}: tok/s per run [{rates}]; page hit rate "
                f"{100 * page_hits:.1f} %, prompt tokens from cache {100 * token_hits:.1f} %"
            )
