"""Scheduling on a real kernel: priority preemption on the real default model (slow),
``llmosctl sched`` and ``nice``, who may change what, and quotas at spawn (a tiny
random model, fast).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kernelproc import KernelProcess, running_kernel
from seamkernel import kernel_with_uids

from llmos.syscalls.client import Client
from llmos.syscalls.errors import Busy, InvalidArgument, OutOfMemory, PermissionDenied

LONG = {"temperature": 0.0, "max_tokens": 200, "ignore_eos": True}
PROMPTS = [
    "Write a long story about a lighthouse keeper.",
    "List every prime number you know, one per line.",
    "Explain how a kernel schedules processes, in detail.",
    "Describe the water cycle to a ten-year-old.",
]
MIN_RUN_STEPS = 4  # the kernel's default


def wait_until(predicate: object, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# -- the real default model --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("swap", [True, False], ids=["swap", "recompute"])
def test_a_nice_minus_20_process_jumps_a_full_batch_and_victims_lose_nothing(swap: bool) -> None:
    """Four nice-19 greedy processes fill the batch; a nice -20 one spawned then starts
    within a few steps (under fcfs it would wait ~56 steps for a slot). The nice-19 ones
    it (and aging) preempted, paged out or dropped for recompute, end with exactly the
    tokens of the same prompts run with nothing interrupting them."""
    if os.geteuid() != 0:
        pytest.skip("a negative nice takes root")
    tiers = {} if swap else {"host_swap": 0, "disk_swap": 0}
    params = {**LONG, "max_tokens": 64}
    with (
        running_kernel(["default"], sched="priority", max_num_seqs=4, **tiers) as kernel,
        Client(kernel.socket) as client,
    ):
        lows = [client.spawn(p, nice=19, **params) for p in PROMPTS]
        wait_until(lambda: all(client.proc(p).num_generated_tokens > 8 for p in lows))
        urgent = client.wait(client.spawn("Hi", nice=-20, temperature=0.0, max_tokens=2))
        rows = [client.proc(p) for p in lows]
        step_seconds = statistics.median(r.tpot for r in rows)
        assert urgent.proc.ttft < 8 * step_seconds, (urgent.proc.ttft, step_seconds)
        assert all(r.ended_at == 0 for r in rows)  # before any nice-19 process finished
        preempted = [client.wait(p) for p in lows]
        assert any(w.proc.num_preemptions for w in preempted)
        references = [client.spawn(p, **params) for p in PROMPTS]  # one slot each
        alone = [client.wait(p) for p in references]
    assert [a.proc.num_preemptions for a in alone] == [0] * len(PROMPTS)
    for low, reference in zip(preempted, alone, strict=True):
        assert low.token_ids == reference.token_ids, low.proc


# -- llmosctl on a tiny model ------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_kernel(tiny_model_dir: Path) -> Iterator[KernelProcess]:
    with running_kernel([str(tiny_model_dir)]) as kernel:
        yield kernel


def llmosctl(kernel: KernelProcess, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "llmos.cli", "--socket", str(kernel.socket), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_llmosctl_sched_shows_and_switches_the_policy(tiny_kernel: KernelProcess) -> None:
    shown = llmosctl(tiny_kernel, "sched")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("policy: fcfs") and "mlfq" in shown.stdout
    switched = llmosctl(tiny_kernel, "sched", "fair", "--json")
    assert switched.returncode == 0, switched.stderr
    reply = json.loads(switched.stdout)
    assert reply["policy"] == "fair" and set(reply["policies"]) >= {"fcfs", "priority", "mlfq"}
    with Client(tiny_kernel.socket) as client:
        assert client.sysinfo().policy == "fair"
        client.wait(client.spawn("hello", max_tokens=3))
        assert [row.uid for row in client.sched().service] == [os.getuid()]
    unknown = llmosctl(tiny_kernel, "sched", "lottery")
    assert unknown.returncode == 2 and "EINVAL" in unknown.stderr
    assert llmosctl(tiny_kernel, "sched", "fcfs").returncode == 0


def test_llmosctl_nice_renices_a_running_process(tiny_kernel: KernelProcess) -> None:
    with Client(tiny_kernel.socket) as client:
        pid = client.spawn("hello", **LONG)
        done = llmosctl(tiny_kernel, "nice", "-n", "5", str(pid))
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"{pid}: nice 5"
        assert client.proc(pid).nice == 5
        out_of_range = llmosctl(tiny_kernel, "nice", "-n", "20", str(pid))
        assert out_of_range.returncode == 2
        client.kill(pid)
        client.wait(pid)


# -- permissions and quotas, through the credentials seam ----------------------------


def test_a_user_cannot_switch_the_policy_or_raise_a_priority(tiny_model_dir: Path) -> None:
    with kernel_with_uids([str(tiny_model_dir)]) as (path, set_uid), Client(path) as root:
        root_pid = root.spawn("hello", **LONG)
        set_uid(1000)
        with Client(path) as user:
            assert user.sched().policy == "fcfs"  # anyone may look
            with pytest.raises(PermissionDenied):
                user.sched("fair")
            with pytest.raises(PermissionDenied):
                user.spawn("hi", nice=-1, max_tokens=2)
            pid = user.spawn("hi", **LONG)
            user.renice(pid, 10)
            assert user.proc(pid).nice == 10
            with pytest.raises(PermissionDenied):
                user.renice(pid, -5)
            with pytest.raises(PermissionDenied):
                user.renice(root_pid, 19)
            with pytest.raises(InvalidArgument):
                user.renice(pid, 20)
            user.kill(pid)
            user.wait(pid)
        root.renice(root_pid, -5)
        assert root.proc(root_pid).nice == -5
        assert root.sched("mlfq").policy == "mlfq"
        root.kill(root_pid)
        root.wait(root_pid)


def test_a_spawn_over_the_process_quota_fails_with_ebusy(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMOS_QUOTA_PROCS", "1")
    monkeypatch.setenv("LLMOS_QUOTA_ACTION", "fail")
    with kernel_with_uids([str(tiny_model_dir)]) as (path, set_uid):
        set_uid(1000)
        with Client(path) as user:
            pid = user.spawn("hello", **LONG)
            with pytest.raises(Busy):
                user.spawn("again", max_tokens=2)
            user.kill(pid)
            user.wait(pid)
            user.wait(user.spawn("now there is room", max_tokens=2))
        set_uid(0)
        with Client(path) as root:
            pids = [root.spawn("root has no quota", **LONG) for _ in range(2)]
            for pid in pids:
                root.kill(pid)
                root.wait(pid)


def test_a_prompt_over_the_page_quota_fails_with_enomem_at_spawn(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMOS_QUOTA_PAGES", "2")
    with kernel_with_uids([str(tiny_model_dir)]) as (path, set_uid):
        set_uid(1000)
        with Client(path) as user:
            try:
                pid = user.spawn(token_ids=list(range(3, 100)), max_tokens=2)  # 7 pages
            except OutOfMemory:
                return
            time.sleep(1.0)
            state = user.proc(pid).state
            user.kill(pid)
            user.wait(pid)
    pytest.fail(f"a spawn over the page quota was accepted and the process stayed {state}")
