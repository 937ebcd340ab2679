"""Plugins end to end: real kernel daemons loading plugins, called through the socket.

Three kernels. The tiny random model with the test-double plugins (a plugin
that raises, hangs, returns the wrong type or leaves processes behind, and
one that adds a policy, a driver and an exit recorder): each misdeed is an
error reply, and the kernel keeps serving. The real default model (slow):
every built-in task plugin through the SDK, as the project's seed writes it,
and through llmosctl. The example package ``examples/llmos-hello``, installed
into the venv for the last tests only: found through its entry point, its
syscall and its command work.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import wave
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kernelproc import KernelProcess, running_kernel, short_socket_dir, start_kernel
from plugin_doubles import bad, policy

import llmos
from llmos.plugins.manager import plugin_manager
from llmos.plugins.music.abc import parse_tune
from llmos.syscalls.client import Client
from llmos.syscalls.errors import LlmosError, NotFound

TESTS = Path(__file__).parent
HELLO_PACKAGE = TESTS.parent / "examples" / "llmos-hello"
DOUBLES = "translation,plugin_doubles.bad,plugin_doubles.policy"
HANG_S = 5.0  # how long bad_hang blocks its thread; its timeout is bad.HANG_TIMEOUT
MIN_RMS = 0.01  # of full scale: a WAV quieter than this counts as silent
EIFFEL = (
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, France. It was designed "
    "by Gustave Eiffel's company and built from 1887 to 1889 for the World's Fair. At "
    "330 metres it was the tallest man-made structure in the world for 41 years. "
    "Millions of people visit it every year."
)
FRANCE = "France is a country in Western Europe. Its capital and largest city is Paris."
ADD = "Write a Python function add(a, b) that returns a + b."


def llmosctl(
    kernel: KernelProcess, *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "llmos.cli", "--socket", str(kernel.socket), *args]
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        command, input=stdin, capture_output=True, text=True, timeout=180, env=environment
    )


def error_of(client: Client, name: str, **args: Any) -> LlmosError:
    """The error reply a plugin syscall gets (fails the test if it succeeds)."""
    with pytest.raises(LlmosError) as caught:
        client.call(name, **args)
    return caught.value


def live_rows(client: Client) -> list[Any]:
    return [row for row in client.ps(all=True) if row.state != "zombie"]


def all_pages_free(client: Client) -> bool:
    pools = client.meminfo().pools
    return bool(pools) and all(pool.num_free == pool.num_pages for pool in pools)


@pytest.fixture(scope="module")
def doubles_importable() -> Iterator[None]:
    """Kernel subprocesses can import ``plugin_doubles`` from the tests folder."""
    with pytest.MonkeyPatch.context() as patch:
        paths = [str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])]
        patch.setenv("PYTHONPATH", os.pathsep.join(paths))
        yield


# -- (a) misbehaving plugins on the tiny model ------------------------------------


@pytest.fixture(scope="module")
def kernel(tiny_model_dir: Path, doubles_importable: None) -> Iterator[KernelProcess]:
    with running_kernel([str(tiny_model_dir)], plugins=DOUBLES, driver=policy.DRIVER) as running:
        yield running


@pytest.fixture
def client(kernel: KernelProcess) -> Iterator[Client]:
    with Client(kernel.socket) as connected:
        yield connected


def test_a_raising_plugin_gets_an_eio_reply_with_its_message(client: Client) -> None:
    error = error_of(client, "bad_raise", message="out of cheese")
    assert error.code == "EIO"
    assert "RuntimeError('out of cheese')" in error.message
    assert "plugin_doubles.bad" in error.message
    assert client.sysinfo().kernel_pid > 0  # the same connection goes on


def test_a_wrong_result_type_gets_an_eio_reply(client: Client) -> None:
    error = error_of(client, "bad_wrong_type")
    assert error.code == "EIO" and "returned dict, not Said" in error.message


def test_bad_arguments_and_unknown_syscalls_get_error_replies(client: Client) -> None:
    assert error_of(client, "bad_raise", message=3).code == "EINVAL"
    assert error_of(client, "bad_raise", nope=1).code == "EINVAL"
    assert error_of(client, "translate", text="Hi.", target_lang="xx").code == "EINVAL"
    assert error_of(client, "no_such_syscall").code == "ENOSYS"
    assert client.generate("Hello", max_tokens=2, temperature=0.0) is not None


def test_a_hanging_plugin_times_out_while_other_clients_are_served(
    kernel: KernelProcess,
) -> None:
    outcome: dict[str, Any] = {}

    def hang() -> None:
        with Client(kernel.socket) as own:
            began = time.monotonic()
            try:
                own.call("bad_hang", seconds=HANG_S)
            except LlmosError as exc:
                outcome["error"] = exc
            outcome["seconds"] = time.monotonic() - began

    start = time.monotonic()
    caller = threading.Thread(target=hang)
    caller.start()
    time.sleep(0.3)  # the handler is asleep on its thread by now
    with Client(kernel.socket) as other:
        asked = time.monotonic()
        assert other.sysinfo().models
        sysinfo_s = time.monotonic() - asked
        text = other.generate("Hello there", max_tokens=4, temperature=0.0)
        served_at = time.monotonic() - start
    caller.join(30)
    assert outcome["error"].code == "ETIMEDOUT"
    assert bad.HANG_TIMEOUT <= outcome["seconds"] < bad.HANG_TIMEOUT + 1.5
    # the kernel's loop never waited for the sleeping handler
    assert sysinfo_s < 1.0 and served_at < HANG_S and isinstance(text, str)


def spawned_pids(error: LlmosError) -> list[int]:
    found = re.search(r"spawned pids \[(\d+), (\d+)\]", error.message)
    assert found, error.message
    return [int(pid) for pid in found.groups()]


def test_a_plugin_that_fails_after_spawning_leaks_no_process_or_page(client: Client) -> None:
    error = error_of(client, "bad_spawn_then_raise")
    assert error.code == "EIO"
    pids = spawned_pids(error)
    assert live_rows(client) == []
    assert not [row for row in client.ps(all=True) if row.pid in pids]  # reaped too
    for pid in pids:
        with pytest.raises(NotFound):
            client.proc(pid)
    assert all_pages_free(client)
    exits = {record["pid"]: record["status"] for record in client.call("double_record")["exits"]}
    assert [exits[pid] for pid in pids] == ["killed", "killed"]  # they were live until then


def test_the_exit_hook_is_told_the_model_of_every_process(client: Client) -> None:
    pid = client.spawn("Hello", max_tokens=2, temperature=0.0)
    model = client.wait(pid).proc.model
    pids = spawned_pids(error_of(client, "bad_spawn_then_raise"))
    exits = {record["pid"]: record for record in client.call("double_record")["exits"]}
    assert exits[pid]["model"] == model and exits[pid]["uid"] == os.getuid()
    for killed in pids:
        assert (exits[killed]["model"], exits[killed]["uid"]) == (model, os.getuid())


def test_a_failing_exit_hook_does_not_hurt_the_kernel(client: Client) -> None:
    # bad's llmos_process_exit raises on every exit; the recorder still sees them
    pid = client.spawn("Hello", max_tokens=3, temperature=0.0)
    assert client.wait(pid).proc.exit_status in ("stop", "length")
    exits = client.call("double_record")["exits"]
    assert pid in [record["pid"] for record in exits]
    assert client.sysinfo().kernel_pid > 0


def test_a_plugins_driver_runs_the_model(client: Client) -> None:
    # the kernel booted with LLMOS_DRIVER=double_torch, which a plugin registered
    assert client.call("double_record")["num_driver_builds"] == 1
    assert isinstance(client.generate("Hello", max_tokens=2, temperature=0.0), str)


def test_sysinfo_names_the_driver_a_plugin_added(client: Client) -> None:
    assert client.sysinfo().driver == policy.DRIVER


def test_a_plugins_policy_can_be_selected_with_sched(kernel: KernelProcess, client: Client) -> None:
    assert policy.POLICY in client.sched().policies
    switched = llmosctl(kernel, "sched", policy.POLICY)
    try:
        assert switched.returncode == 0, switched.stderr
        assert f"policy: {policy.POLICY}" in switched.stdout
        assert client.sysinfo().policy == policy.POLICY
        assert isinstance(client.generate("Hello", max_tokens=3, temperature=0.0), str)
    finally:
        client.sched("fcfs")


def test_llmosctl_plugins_lists_names_versions_hooks_and_syscalls(kernel: KernelProcess) -> None:
    done = llmosctl(kernel, "plugins", "--json")
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    plugins = {plugin["name"]: plugin for plugin in reply["plugins"]}
    assert set(plugins) == {"translation", "plugin_doubles.bad", "plugin_doubles.policy"}
    assert plugins["translation"]["version"] == llmos.__version__
    assert plugins["translation"]["syscalls"] == ["translate"]
    assert plugins["plugin_doubles.bad"]["version"] == bad.__version__
    assert "llmos_process_exit" in plugins["plugin_doubles.bad"]["hooks"]
    assert plugins["plugin_doubles.policy"] == {
        "name": "plugin_doubles.policy",
        "version": policy.__version__,
        "hooks": [
            "llmos_process_exit",
            "llmos_register_drivers",
            "llmos_register_policies",
            "llmos_register_syscalls",
        ],
        "syscalls": ["double_record"],
    }
    syscalls = {syscall["name"]: syscall for syscall in reply["syscalls"]}
    assert syscalls["bad_hang"]["params"] == ["seconds"]
    assert syscalls["translate"]["doc"].startswith("Translate")
    assert reply["presets"] == {"machine_translation": "translate on default"}
    table = llmosctl(kernel, "plugins", env={"COLUMNS": "200"})  # one line a plugin
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if "plugin_doubles.policy" in line)
    assert policy.__version__ in row and "double_record" in row and "register_drivers" in row


def test_translate_runs_through_the_socket_and_its_processes_are_reaped(client: Client) -> None:
    result = client.call("translate", text="Hello there. How are you?", target_lang="fr")
    assert result["num_segments"] == 2 and isinstance(result["text"], str)
    assert (result["source_lang"], result["target_lang"]) == ("en", "fr")
    assert live_rows(client) == [] and all_pages_free(client)


def test_a_hung_plugin_does_not_keep_the_kernel_from_exiting(doubles_importable: None) -> None:
    folder = short_socket_dir()
    # no model: the hanging handler needs none, and the kernel boots faster
    kernel = start_kernel(folder / "k.sock", [], plugins="plugin_doubles.bad", shutdown_timeout=1)
    try:
        with Client(kernel.socket) as client:
            assert error_of(client, "bad_hang", seconds=120).code == "ETIMEDOUT"
        kernel.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            kernel.process.wait(5)
        assert kernel.process.returncode == 0, kernel.log_text()[-2000:]
    finally:
        if kernel.process.poll() is None:
            kernel.process.kill()
            kernel.process.wait()
        shutil.rmtree(folder, ignore_errors=True)


# -- (b) every task plugin on the real default model (slow) ------------------------


@pytest.fixture(scope="module")
def default_kernel() -> Iterator[KernelProcess]:
    with running_kernel(["default"], kv_budget=256 * 1024**2) as running:
        yield running


@pytest.fixture
def on_default_socket(default_kernel: KernelProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    """``llmos.load_model(...)`` with no socket argument finds the test kernel."""
    monkeypatch.setenv("LLMOS_SOCKET", str(default_kernel.socket))


def wav_rms(path: Path) -> float:
    """Root mean square of a 16-bit WAV as a fraction of full scale."""
    with wave.open(str(path), "rb") as wav:
        assert wav.getsampwidth() == 2 and wav.getnframes() > 0
        samples = array("h", wav.readframes(wav.getnframes()))
    if sys.byteorder == "big":
        samples.byteswap()
    return math.sqrt(sum(s * s for s in samples) / len(samples)) / 32768


def check_tune(abc: str, midi_path: Path, wav_path: Path, num_bars: int) -> None:
    assert len(parse_tune(abc).bars) == num_bars
    assert midi_path.read_bytes()[:4] == b"MThd"
    assert wav_rms(wav_path) > MIN_RMS


@pytest.mark.slow
def test_translate_as_the_seed_writes_it(on_default_socket: None) -> None:
    with llmos.load_model("machine_translation") as model:
        text = model.translate("Hello, world!", source_lang="en", target_lang="zh")
    assert isinstance(text, str) and text.strip()


@pytest.mark.slow
def test_summarize_on_the_default_model(on_default_socket: None) -> None:
    with llmos.load_model("summarization") as model:
        summary = model.summarize(EIFFEL, max_words=30)
    assert summary.strip() and len(summary.split()) <= 30


@pytest.mark.slow
def test_codegen_returns_code_that_parses(on_default_socket: None) -> None:
    with llmos.load_model("code_generation") as model:
        result = model.call("codegen", description=ADD, language="python", max_tokens=96)
        code = model.codegen(ADD, max_tokens=96)  # the typed helper: the code only
    assert result["is_checked"] and result["is_valid"], result
    tree = ast.parse(result["code"])
    assert any(isinstance(node, ast.FunctionDef) for node in ast.walk(tree))
    ast.parse(code)


@pytest.mark.slow
def test_ask_answers_from_the_context(on_default_socket: None) -> None:
    with llmos.load_model("question_answering") as model:
        answer = model.ask("What is the capital of France?", context=FRANCE, max_tokens=32)
    assert "Paris" in answer


@pytest.mark.slow
def test_compose_makes_abc_midi_and_an_audible_wav(on_default_socket: None) -> None:
    with llmos.load_model("music_generation") as model:
        result = model.compose("a cheerful folk tune", bars=2, seed=1)
    check_tune(result["abc"], Path(result["midi_path"]), Path(result["wav_path"]), 2)
    assert Path(result["abc_path"]).read_text() == result["abc"]


@pytest.mark.slow
def test_llmosctl_translate(default_kernel: KernelProcess) -> None:
    done = llmosctl(default_kernel, "translate", "--from", "en", "--to", "fr", "Good morning.")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


@pytest.mark.slow
def test_llmosctl_summarize_a_file(default_kernel: KernelProcess, tmp_path: Path) -> None:
    source = tmp_path / "eiffel.txt"
    source.write_text(EIFFEL)
    done = llmosctl(default_kernel, "summarize", "--max-words", "15", str(source))
    assert done.returncode == 0, done.stderr
    assert 0 < len(done.stdout.split()) <= 15


@pytest.mark.slow
def test_llmosctl_codegen(default_kernel: KernelProcess) -> None:
    done = llmosctl(default_kernel, "codegen", "--lang", "python", ADD)
    assert done.returncode == 0, done.stderr
    ast.parse(done.stdout)


@pytest.mark.slow
def test_llmosctl_ask_with_a_context_file(default_kernel: KernelProcess, tmp_path: Path) -> None:
    context = tmp_path / "france.txt"
    context.write_text(FRANCE)
    question = "What is the capital of France?"
    done = llmosctl(default_kernel, "ask", question, "--context", str(context))
    assert done.returncode == 0, done.stderr
    assert "Paris" in done.stdout


@pytest.mark.slow
def test_llmosctl_compose_writes_the_wav(default_kernel: KernelProcess, tmp_path: Path) -> None:
    wav, midi = tmp_path / "tune.wav", tmp_path / "tune.mid"
    args = ["--bars", "2", "--seed", "2", "--midi", str(midi), "-o", str(wav)]
    done = llmosctl(default_kernel, "compose", *args, "a slow lullaby")
    assert done.returncode == 0, done.stderr
    check_tune(done.stdout, midi, wav, 2)


# -- (c) the example package, installed last, so it is in the venv briefly -----------


@pytest.fixture(scope="module")
def hello_installed() -> Iterator[None]:
    """``examples/llmos-hello`` pip-installed into the venv, uninstalled afterwards."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    install = [*pip, "install", "--no-deps", "--no-build-isolation", str(HELLO_PACKAGE)]
    subprocess.run(install, check=True, capture_output=True, timeout=300)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        subprocess.run([*pip, "uninstall", "-y", "llmos-hello"], check=True, timeout=120)
        importlib.invalidate_caches()


@pytest.fixture(scope="module")
def hello_kernel(tiny_model_dir: Path, hello_installed: None) -> Iterator[KernelProcess]:
    with running_kernel([str(tiny_model_dir)], plugins="hello") as running:
        yield running


def test_the_installed_example_loads_only_when_named(hello_installed: None) -> None:
    named = plugin_manager("qa,hello")
    assert {name for name, _ in named.list_name_plugin()} == {"qa", "hello"}
    assert "hello" not in dict(plugin_manager("qa").list_name_plugin())
    assert "hello" not in dict(plugin_manager().list_name_plugin())  # the suite's built-ins


def test_llmosctl_plugins_shows_the_example(hello_kernel: KernelProcess) -> None:
    table = llmosctl(hello_kernel, "plugins", env={"COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if line.startswith("hello"))
    assert row.split()[:3] == ["hello", "0.1.0", "hello"]
    assert "preset hello_model: hello on default" in table.stdout
    reply = json.loads(llmosctl(hello_kernel, "plugins", "--json").stdout)
    [plugin] = reply["plugins"]
    assert plugin["hooks"] == [
        "llmos_cli",
        "llmos_process_exit",
        "llmos_register_models",
        "llmos_register_syscalls",
    ]


def test_the_examples_syscall_works_through_the_socket(hello_kernel: KernelProcess) -> None:
    with Client(hello_kernel.socket) as client:
        first = client.call("hello", name="Ada")
        second = client.call("hello", name="Grace")
    assert first["greeting"] == "Hello, Ada!" and isinstance(first["model_says"], str)
    assert second["greeting"] == "Hello, Grace!"
    # its llmos_process_exit counted the process the first call ran
    assert sum(second["exits"].values()) > sum(first["exits"].values())


def test_the_examples_command_runs_when_the_plugin_is_allowed(
    hello_kernel: KernelProcess,
) -> None:
    done = llmosctl(hello_kernel, "hello", "Ada", env={"LLMOS_PLUGINS": "hello"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "Hello, Ada!"
    hidden = llmosctl(hello_kernel, "hello", "Ada", env={"LLMOS_PLUGINS": "qa"})
    assert hidden.returncode == 2 and "No such command 'hello'" in hidden.stderr
