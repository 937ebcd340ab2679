"""End to end on the real default model: a kernel daemon, its socket, the SDK and llmosctl."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from kernelproc import KernelProcess, running_kernel

import llmos
from llmos.kernel.config import EngineConfig
from llmos.kernel.engine import Engine
from llmos.syscalls.client import Client
from llmos.syscalls.events import TokenEvent, WaitingEvent
from llmos.syscalls.sampling import SamplingParams

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0.0, "max_tokens": 24}


@pytest.fixture(scope="module")
def kernel() -> Iterator[KernelProcess]:
    with running_kernel(["default"], kv_budget=128 * 1024**2) as running:
        yield running


@pytest.fixture
def client(kernel: KernelProcess) -> Iterator[Client]:
    with Client(kernel.socket) as connected:
        yield connected
        for row in connected.ps():  # leave the kernel as we found it
            if row.state != "zombie":
                connected.kill(row.pid)
            connected.wait(row.pid)


def free_pages(client: Client) -> tuple[int, int]:
    [pool] = client.meminfo().pools
    return pool.num_free, pool.num_pages


def test_spawn_stream_wait_equals_the_in_process_engine(client: Client) -> None:
    stream = client.run(messages=QUESTION, **GREEDY)
    events = list(stream)
    assert all(isinstance(e, TokenEvent) for e in events[:-1])
    waited = client.wait(stream.pid)
    assert waited.text == stream.text and waited.proc.exit_status in ("stop", "length")
    assert waited.token_ids == stream.token_ids
    engine = Engine.from_model("default", EngineConfig(dtype="float32", kv_budget=16 * 1024**2))
    [local] = engine.generate([QUESTION], SamplingParams(**GREEDY))  # type: ignore[arg-type]
    assert local.text == stream.text and "Paris" in local.text


def test_two_clients_stream_at_once(kernel: KernelProcess) -> None:
    texts: list[str] = []

    def ask() -> None:
        with Client(kernel.socket) as own:
            stream = own.run(messages=QUESTION, **GREEDY)
            texts.append("".join(stream.text_chunks()))
            own.wait(stream.pid)

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(texts) == 2 and texts[0] == texts[1] and "Paris" in texts[0]


def test_kill_mid_generation_frees_every_page(client: Client) -> None:
    stream = client.run("Count to one thousand:", max_tokens=400, ignore_eos=True)
    iterator = iter(stream)
    for _ in range(3):
        next(iterator)
    assert client.proc(stream.pid).num_pages > 0
    client.kill(stream.pid)
    assert client.wait(stream.pid).proc.exit_status == "killed"
    free, total = free_pages(client)
    assert free == total


def test_write_continues_a_chat_without_prefilling_earlier_turns(client: Client) -> None:
    first = client.run(messages=QUESTION, chat=True, **GREEDY)
    list(first)
    assert isinstance(first.final, WaitingEvent)
    before = client.proc(first.pid)
    assert before.state == "waiting" and before.num_pages > 0
    second = client.write_stream(first.pid, "And of Germany?")
    list(second)
    after = client.proc(first.pid)
    assert after.num_turns == 2 and second.text
    new_prefill = after.num_prefill_tokens - before.num_prefill_tokens
    held = before.num_prompt_tokens + before.num_generated_tokens
    # only the new turn (its template tokens, the user's words, the last reply's end
    # token) was prefilled: far fewer tokens than the conversation already held
    assert 0 < new_prefill < 20 < held, (new_prefill, held)
    client.kill(first.pid)
    client.wait(first.pid)
    free, total = free_pages(client)
    assert free == total


def test_sdk_load_model_generate_and_chat(kernel: KernelProcess) -> None:
    with llmos.load_model("default", socket_path=kernel.socket) as model:
        assert model.name == "smollm2"
        assert "Paris" in model.chat("What is the capital of France?", **GREEDY)
        text = "".join(model.stream("The capital of France is", max_tokens=4, temperature=0))
        assert text == model.generate("The capital of France is", max_tokens=4, temperature=0)


def llmosctl(
    kernel: KernelProcess, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "llmos.cli", "--socket", str(kernel.socket), *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120)


def test_llmosctl_run_ps_and_json(kernel: KernelProcess) -> None:
    done = llmosctl(
        kernel,
        "run",
        "--temperature",
        "0",
        "--max-tokens",
        "24",
        "-",
        stdin=("What is the capital of France?"),
    )
    assert done.returncode == 0, done.stderr
    assert "Paris" in done.stdout
    as_json = llmosctl(kernel, "run", "--json", "--max-tokens", "4", "hello")
    assert as_json.returncode == 0, as_json.stderr
    record = json.loads(as_json.stdout)
    assert record["exit_status"] == "length" and record["pid"] > 0
    ps = llmosctl(kernel, "ps", "-a", "--json")
    assert ps.returncode == 0 and isinstance(json.loads(ps.stdout), list)


def test_llmosctl_without_a_kernel_says_how_to_start_one(tmp_path: Path) -> None:
    missing = [sys.executable, "-m", "llmos.cli", "--socket", "/tmp/llmos-none/k.sock", "ps"]
    done = subprocess.run(missing, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert "llmosctl up" in done.stderr and len(done.stderr.strip().splitlines()) == 1
