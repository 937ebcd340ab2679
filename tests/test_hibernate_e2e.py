"""Hibernation end to end: real kernel daemons restarted on one data directory.

A process that is stopped, or running under ``Shutdown(hibernate=True)``,
comes back in the next kernel with its pid, owner, state and pages, and
finishes with exactly the text of an uninterrupted run on a fresh kernel. A
corrupt image fails only its own process; a stopped process's image stays on
disk until it is continued, so a kernel killed right after restoring it
loses nothing, and the swap files it leaves go at the next boot. One last
test hibernates and restores in process, step by step, to catch the moment
a character is half generated.
"""

from __future__ import annotations

import contextlib
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from kernelproc import KernelProcess, running_kernel, short_socket_dir, start_kernel

from llmos.kernel.config import EngineConfig
from llmos.kernel.engine import Engine
from llmos.kernel.hibernate import hibernate, read_image, restore
from llmos.syscalls.client import Client
from llmos.syscalls.errors import Interrupted
from llmos.syscalls.events import TokenEvent
from llmos.syscalls.replies import Waited
from llmos.syscalls.requests import Shutdown
from llmos.syscalls.sampling import SamplingParams

MAX_TOKENS = 200  # long enough that STOP and shutdown land mid-way, short of the context
GREEDY = {"temperature": 0.0, "max_tokens": MAX_TOKENS, "ignore_eos": True}
SWAP = {"host_swap": 16 << 20, "disk_swap": 4 << 20}
# Prompts whose greedy continuations on the tiny model never hold back part of a
# character (held-back text survives hibernation too: see the last test).
PROMPT_STOPPED = "12345 The"
PROMPT_RUNNING = "12345 Paged"
PROMPTS = (PROMPT_STOPPED, PROMPT_RUNNING)
Finished = tuple[str, list[int]]  # text and generated token ids


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread_in_kernels() -> Iterator[None]:
    """Tiny matmuls on a busy two-core machine are ~50x slower with two threads."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        yield


@pytest.fixture(scope="module")
def uninterrupted(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Finished]:
    """Each prompt run start to end on a fresh kernel of its own."""
    data_dir = tmp_path_factory.mktemp("fresh-kernel")
    with (
        running_kernel([str(tiny_model_dir)], data_dir=data_dir, **SWAP) as kernel,
        Client(kernel.socket) as client,
    ):
        return {prompt: run_whole(client, prompt) for prompt in PROMPTS}


def run_whole(client: Client, prompt: str) -> Finished:
    with client.run(prompt, **GREEDY) as stream:
        texts = [event.text for event in stream if isinstance(event, TokenEvent)]
    assert all(texts), f"{prompt!r} holds back text: choose another prompt"
    return finish(client, stream.pid)


def finish(client: Client, pid: int) -> Finished:
    return outcome(client.wait(pid, timeout=60))


def outcome(waited: Waited) -> Finished:
    assert waited.proc.exit_status == "length", waited.proc
    return waited.text, waited.token_ids


def spawn_and_stop(client: Client, prompt: str) -> int:
    """A greedy process that streams a few tokens and is then stopped (SIGSTOP)."""
    with client.run(prompt, **GREEDY) as stream:
        for _ in range(3):
            next(stream)
    client.kill(stream.pid, "STOP")
    assert client.proc(stream.pid).state == "stopped", "it finished before STOP landed"
    return stream.pid


def shutdown(kernel: KernelProcess, client: Client, hibernate: bool) -> None:
    with contextlib.suppress(Interrupted):  # the kernel may hang up before it replies
        client.call(Shutdown(hibernate=hibernate))
    assert kernel.process.wait(30) == 0, kernel.log_text()


def images(data_dir: Path) -> list[str]:
    return sorted(path.name for path in (data_dir / "hibernate").glob("*.kv"))


def swap_files(data_dir: Path) -> list[str]:
    return sorted(path.name for path in (data_dir / "swap").glob("*.swap"))


def flip_a_page_byte(path: Path) -> None:
    """Flip one byte past the image's header, in its pages' bytes."""
    data = bytearray(path.read_bytes())
    (length,) = struct.unpack_from(">Q", data)
    offset = 8 + length + (len(data) - 8 - length) // 2
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_hibernated_processes_come_back_and_finish_exactly(
    tiny_model_dir: Path, tmp_path: Path, uninterrupted: dict[str, Finished]
) -> None:
    model, data_dir = str(tiny_model_dir), tmp_path / "data"
    with (
        running_kernel([model], data_dir=data_dir, **SWAP) as kernel,
        Client(kernel.socket) as client,
    ):
        stopped = spawn_and_stop(client, PROMPT_STOPPED)
        with client.run(PROMPT_RUNNING, **GREEDY) as stream:
            next(stream)
            running = stream.pid
        shutdown(kernel, client, hibernate=True)
    assert images(data_dir) == sorted([f"{stopped}.kv", f"{running}.kv"]), kernel.log_text()

    with (
        running_kernel([model], data_dir=data_dir, **SWAP) as kernel,
        Client(kernel.socket) as client,
    ):
        rows = {row.pid: row for row in client.ps(all=True)}
        assert sorted(rows) == sorted([stopped, running])
        assert rows[stopped].uid == rows[running].uid == client.uid
        assert rows[stopped].state == "stopped"
        assert rows[stopped].num_swapped == rows[stopped].num_pages > 0  # pages in swap
        client.kill(stopped, "CONT")
        waited = client.wait(stopped, timeout=60)
        assert waited.proc.num_page_ins == rows[stopped].num_swapped  # not recomputed
        assert outcome(waited) == uninterrupted[PROMPT_STOPPED]
        assert finish(client, running) == uninterrupted[PROMPT_RUNNING]
        assert not client.ps(all=True)
    assert images(data_dir) == []


def test_a_corrupt_image_fails_only_its_process(
    tiny_model_dir: Path, tmp_path: Path, uninterrupted: dict[str, Finished]
) -> None:
    model, data_dir = str(tiny_model_dir), tmp_path / "data"
    with (
        running_kernel([model], data_dir=data_dir, **SWAP) as kernel,
        Client(kernel.socket) as client,
    ):
        corrupt = spawn_and_stop(client, PROMPT_STOPPED)
        intact = spawn_and_stop(client, PROMPT_RUNNING)
        shutdown(kernel, client, hibernate=False)  # stopped processes hibernate anyway
    flip_a_page_byte(data_dir / "hibernate" / f"{corrupt}.kv")

    with (
        running_kernel([model], data_dir=data_dir, **SWAP) as kernel,
        Client(kernel.socket) as client,
    ):
        failed = client.proc(corrupt)
        assert (failed.state, failed.exit_status) == ("zombie", "error")
        assert failed.error is not None and "checksum" in failed.error
        assert client.proc(intact).state == "stopped"
        client.kill(intact, "CONT")
        assert finish(client, intact) == uninterrupted[PROMPT_RUNNING]
        assert client.wait(corrupt).proc.exit_status == "error"
    assert images(data_dir) == []  # reaping the failed one removed its file


def test_a_stopped_image_survives_a_killed_kernel(
    tiny_model_dir: Path, tmp_path: Path, uninterrupted: dict[str, Finished]
) -> None:
    model, data_dir = str(tiny_model_dir), tmp_path / "data"
    with (
        running_kernel([model], data_dir=data_dir, **SWAP) as kernel,
        Client(kernel.socket) as client,
    ):
        stopped = spawn_and_stop(client, PROMPT_STOPPED)
        shutdown(kernel, client, hibernate=False)

    folder = short_socket_dir()
    try:
        crashing = start_kernel(folder / "k.sock", [model], data_dir=data_dir, **SWAP)
        with Client(crashing.socket) as client:
            assert client.proc(stopped).state == "stopped"
        crashing.process.kill()
        crashing.process.wait(30)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert images(data_dir) == [f"{stopped}.kv"]
    left_behind = swap_files(data_dir)
    assert left_behind and all(name.startswith(f"{crashing.process.pid}-") for name in left_behind)

    with (
        running_kernel([model], data_dir=data_dir, **SWAP) as kernel,
        Client(kernel.socket) as client,
    ):
        assert not set(swap_files(data_dir)) & set(left_behind)  # removed at boot
        assert client.proc(stopped).state == "stopped"
        client.kill(stopped, "CONT")
        assert finish(client, stopped) == uninterrupted[PROMPT_STOPPED]


@pytest.mark.slow
def test_default_model_resumes_exactly_across_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    params = {"temperature": 0.0, "max_tokens": 64, "ignore_eos": True}
    prompt = "The capital of France is"
    with (
        running_kernel(["default"], data_dir=data_dir, **SWAP) as kernel,
        Client(kernel.socket) as client,
    ):
        expected = finish(client, client.spawn(prompt, **params))
        with client.run(prompt, **params) as stream:
            for _ in range(8):
                next(stream)
        client.kill(stream.pid, "STOP")
        assert client.proc(stream.pid).state == "stopped"
        shutdown(kernel, client, hibernate=False)

    with (
        running_kernel(["default"], data_dir=data_dir, **SWAP) as kernel,
        Client(kernel.socket) as client,
    ):
        client.kill(stream.pid, "CONT")
        assert finish(client, stream.pid) == expected


# -- in process, step by step ----------------------------------------------


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_torch_thread")
def test_text_held_back_at_hibernation_is_not_lost(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = EngineConfig(dtype="float32", kv_budget=1 << 20, host_swap=1 << 20, disk_swap=0)
    params = SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True)
    prompt = "Hello world! Hello there"  # its first generated token is half a character
    first = Engine.from_model(str(tiny_model_dir), config)
    [expected] = first.generate([prompt], params)
    process = first.add(prompt, params)
    outputs = first.step()
    assert [out.text for out in outputs] == [""] and process.is_live  # held back
    path = hibernate(first, process, tmp_path)
    first.kill(process.pid)

    second = Engine.from_model(str(tiny_model_dir), config)
    restored = restore(second, read_image(path))
    while second.has_work:
        second.step()
    assert restored.generated_ids == expected.token_ids
    assert restored.text == expected.text
