"""bench/syscalls.py's tables and targets."""

from __future__ import annotations

from typing import Any

from harness.contention import CONTENDED

P50_RATIO_TARGET = 1.5  # kernel p50 within this factor of the floor
CALLS_16_TARGET = 20_000.0  # total calls/s with 16 clients (printed as ">= 20,000")
STREAM_LOSS_TARGET = 5.0  # % tokens/s lost through the kernel

RPC_ROWS = [  # label, figure key, unit format
    ("latency p50 (us)", "p50_us", "{:.1f}"),
    ("latency p99 (us)", "p99_us", "{:.1f}"),
    ("calls/s, 1 client", "calls_s_1", "{:,.0f}"),
    ("calls/s, 16 clients", "calls_s_16", "{:,.0f}"),
]
SDK_ROWS = [
    ("SDK Client.sysinfo p50 (us)", "sdk_p50_us", "{:.1f}"),
    ("SDK Client.sysinfo p99 (us)", "sdk_p99_us", "{:.1f}"),
    ("SDK Client.sysinfo calls/s", "sdk_calls_s", "{:,.0f}"),
]


def target(name: str, value: float, shown: str, limit: str, is_met: bool) -> dict[str, Any]:
    """One target's row, printed as ``target NAME: SHOWN (LIMIT) PASS|MISS``."""
    verdict = "PASS" if is_met else "MISS"
    print(f"target {name}: {shown} ({limit}) {verdict}")
    return {"target": name, "value": value, "limit": limit, "verdict": verdict}


def warn_if_contended(*other_cpu: float) -> None:
    """Warn when other processes kept too many cores busy."""
    if max(other_cpu) > CONTENDED:
        print(
            f"warning: other processes kept > {CONTENDED} cores busy (other-cpu); "
            "these figures are unreliable, rerun on a quiet machine"
        )


def print_rpc(rpc: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """The rpc table, floor against kernel; its targets."""
    echo, kernel = rpc["echo"], rpc["kernel"]
    print(f"\n{'metric':<30} {'echo floor':>12} {'kernel':>12} {'ratio':>7}")
    for label, key, fmt in RPC_ROWS:
        cells = fmt.format(echo[key]), fmt.format(kernel[key])
        print(f"{label:<30} {cells[0]:>12} {cells[1]:>12} {kernel[key] / echo[key]:>6.2f}x")
    for label, key, fmt in SDK_ROWS:
        vs_raw = kernel[key] / kernel[key.removeprefix("sdk_")]
        print(f"{label:<30} {'-':>12} {fmt.format(kernel[key]):>12}  ({vs_raw:.2f}x raw socket)")
    print(f"{'other-cpu (cores)':<30} {echo['other_cpu']:>12.2f} {kernel['other_cpu']:>12.2f}")
    warn_if_contended(echo["other_cpu"], kernel["other_cpu"])
    p50_ratio, calls_16 = kernel["p50_us"] / echo["p50_us"], kernel["calls_s_16"]
    is_fast = p50_ratio <= P50_RATIO_TARGET
    has_rate = calls_16 >= CALLS_16_TARGET
    return [
        target("p50 vs floor", p50_ratio, f"{p50_ratio:.2f}x", f"<= {P50_RATIO_TARGET}x", is_fast),
        target("calls/s, 16 clients", calls_16, f"{calls_16:,.0f}", ">= 20,000", has_rate),
    ]


def print_streaming(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """The streaming table, in-process against kernel; its target."""
    print(
        f"\nstreaming: {figures['model']}, varied workload of {figures['num_requests']} requests, "
        f"prompt tokens {figures['prompt_tokens']}, output tokens {figures['output_tokens']}"
    )
    print(f"{'system':<30} {'tok/s':>12} {'other-cpu':>10}")
    for label, side in (
        ("Engine.generate, in-process", "in_process"),
        ("kernel, streams", "kernel"),
    ):
        print(
            f"{label:<30} {figures[side + '_tok_s']:>12.1f} {figures[side + '_other_cpu']:>10.2f}"
        )
    warn_if_contended(figures["in_process_other_cpu"], figures["kernel_other_cpu"])
    lost = figures["lost_pct"]
    is_met = lost <= STREAM_LOSS_TARGET
    return [
        target("streaming tokens/s lost", lost, f"{lost:.1f}%", f"<= {STREAM_LOSS_TARGET}%", is_met)
    ]
