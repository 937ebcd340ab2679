"""llmosctl without a kernel: help, exit codes, prompts, options and rendering.

The end-to-end tests against a running kernel live elsewhere; these need no
kernel and no model. Where no kernel runs, the socket is a fresh short path.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from llmos.cli import cli
from llmos.cli.app import EXIT_CODES, KernelGroup, error_line, exit_code_for
from llmos.cli.launch import default_log_file, is_down, kernel_env, kernel_overrides, log_tail
from llmos.cli.options import chat_messages, pop_sampling, prompt_fields, read_prompt
from llmos.cli.render import format_bytes, format_duration, key_value_text, ps_row
from llmos.cli.streaming import Outcome, echo_stream
from llmos.syscalls.errors import InvalidArgument, KernelUnavailable, NotFound, PermissionDenied
from llmos.syscalls.events import ExitEvent, TokenEvent, WaitingEvent
from llmos.syscalls.replies import ProcInfo, Reply
from llmos.syscalls.streams import ProcessStream

COMMAND_NAMES = sorted(cli.commands)
NEEDS_KERNEL = [
    ["status"],
    ["ps"],
    ["ps", "-a"],
    ["proc", "1"],
    ["mem"],
    ["models"],
    ["sysinfo"],
    ["kill", "1"],
    ["wait", "1"],
    ["run", "hi"],
    ["spawn", "hi"],
    ["load", "x"],
    ["unload", "x"],
    ["write", "1", "hi"],
]


@pytest.fixture
def socket_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short socket path nothing listens on, also set as LLMOS_SOCKET."""
    folder = Path(tempfile.mkdtemp(prefix="llmosctl-", dir="/tmp"))
    path = folder / "kernel.sock"
    monkeypatch.setenv("LLMOS_SOCKET", str(path))
    yield path
    shutil.rmtree(folder, ignore_errors=True)


def invoke(*args: str, input: str | None = None) -> click.testing.Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def no_kernel_line(path: Path) -> str:
    return f"llmosctl: no kernel is running on {path}; start one with `llmosctl up`\n"


# -- help ------------------------------------------------------------------


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_every_command_has_help_with_its_purpose_and_json(name: str) -> None:
    command = cli.commands[name]
    assert command.help, f"{name} has no docstring"
    result = invoke(name, "--help")
    assert result.exit_code == 0
    first_line = command.help.strip().splitlines()[0]
    assert " ".join(first_line.split()[:4]) in " ".join(result.stdout.split())
    assert "--json" in result.stdout


def test_group_help_lists_the_commands_and_every_exit_code() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for name in (
        "up",
        "down",
        "status",
        "run",
        "spawn",
        "chat",
        "wait",
        "ps",
        "kill",
        "proc",
        "mem",
        "models",
        "load",
        "unload",
    ):
        assert f"  {name} " in result.stdout
    for code, status in EXIT_CODES.items():
        assert f"{status}    " in result.stdout and code in result.stdout
    assert "130" in result.stdout


# -- exit codes ------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ECONNREFUSED", 3),
        ("EPERM", 4),
        ("ENOENT", 5),
        ("EINVAL", 2),
        ("ENOMEM", 1),
        ("EBUSY", 1),
        ("ETIMEDOUT", 1),
        ("EWHATEVER", 1),
    ],
)
def test_exit_code_for(code: str, status: int) -> None:
    assert exit_code_for(code) == status


def test_error_line_names_the_socket_when_no_kernel_runs() -> None:
    error = KernelUnavailable("no kernel is listening on /x.sock; start one with `llmosctl up`")
    assert error_line(error, Path("/x.sock")) == no_kernel_line(Path("/x.sock")).rstrip("\n")
    odd = KernelUnavailable("cannot connect to the kernel at /x.sock: permission denied")
    assert error_line(odd, Path("/x.sock")).endswith(
        "(cannot connect to the kernel at /x.sock: permission denied)"
    )
    assert error_line(NotFound("no such process: 7"), Path("/x")) == (
        "llmosctl: no such process: 7 (ENOENT)"
    )


@pytest.mark.parametrize(
    ("error", "status"),
    [(PermissionDenied("not yours"), 4), (NotFound("gone"), 5), (InvalidArgument("bad"), 2)],
)
def test_group_turns_errors_into_one_line_and_an_exit_code(error: Exception, status: int) -> None:
    @click.group(cls=KernelGroup)
    def group() -> None:
        """A group with one failing command."""

    @group.command()
    def fail() -> None:
        """Raise the error under test."""
        raise error

    result = CliRunner().invoke(group, ["fail"])
    assert result.exit_code == status
    assert result.stderr == f"llmosctl: {error.message} ({error.code})\n"  # type: ignore[attr-defined]


@pytest.mark.parametrize("args", NEEDS_KERNEL, ids=" ".join)
def test_commands_exit_3_with_one_line_when_no_kernel_runs(
    socket_path: Path, args: list[str]
) -> None:
    result = invoke(*args)
    assert result.exit_code == 3
    assert result.stderr == no_kernel_line(socket_path)
    assert result.stdout == ""


def test_socket_option_wins_over_the_environment(socket_path: Path) -> None:
    other = socket_path.with_name("other.sock")
    result = invoke("--socket", str(other), "status")
    assert result.exit_code == 3
    assert result.stderr == no_kernel_line(other)


def test_down_without_a_kernel_says_so_and_succeeds(socket_path: Path) -> None:
    result = invoke("down")
    assert result.exit_code == 0
    assert result.stdout == f"no kernel is running on {socket_path}\n"
    as_json = json.loads(invoke("down", "--json").stdout)
    assert as_json == {"socket": str(socket_path), "kernel_pid": None, "stopped": False}


def test_bad_sampling_values_are_usage_errors(socket_path: Path) -> None:
    assert invoke("run", "--temperature", "-1", "hi").exit_code == 2
    assert invoke("run", "--top-p", "0", "hi").exit_code == 2
    assert invoke("kill", "-s", "HUP", "1").exit_code == 2
    assert invoke("kill").exit_code == 2


def test_chat_with_nothing_to_say_ends_without_a_kernel(socket_path: Path) -> None:
    assert invoke("chat", input="").exit_code == 0
    assert invoke("chat", input="\n/exit\n").exit_code == 0
    assert invoke("chat", input="hello\n").exit_code == 3


def test_the_installed_script_exits_3_without_a_kernel(socket_path: Path) -> None:
    script = Path(sys.executable).parent / "llmosctl"
    if not script.exists():
        pytest.skip("llmosctl is not installed in this environment")
    result = subprocess.run([str(script), "status"], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr) == (3, no_kernel_line(socket_path))


def test_up_reports_a_kernel_that_exits_while_starting(socket_path: Path) -> None:
    result = invoke("up", "--model", "/nonexistent/model", "--timeout", "60")
    assert result.exit_code == 1
    assert result.stderr.startswith("llmosctl: the kernel exited with status ")
    assert "/nonexistent/model" in result.stderr  # the tail of the kernel's log
    assert not socket_path.exists()


def test_log_tail_shows_only_what_was_written_after_the_offset(tmp_path: Path) -> None:
    log = tmp_path / "k.log"
    log.write_text("old 1\nold 2\n")
    offset = log.stat().st_size
    with open(log, "a") as out:
        out.write("new 1\nnew 2\nnew 3\n")
    assert log_tail(log, offset) == "new 1\nnew 2\nnew 3"
    assert log_tail(log, offset, num_lines=1) == "new 3"
    assert log_tail(tmp_path / "missing.log") == ""


def test_the_kernel_is_down_once_its_socket_and_pidfile_are_gone(socket_path: Path) -> None:
    socket_path.touch()
    assert not is_down(socket_path, None)
    socket_path.unlink()
    socket_path.with_name("kernel.sock.pid").touch()  # released last by a stopping kernel
    assert not is_down(socket_path, None)
    socket_path.with_name("kernel.sock.pid").unlink()
    assert is_down(socket_path, None)


# -- prompts and options -----------------------------------------------------


def test_read_prompt_takes_stdin_for_dash() -> None:
    assert read_prompt("-", io.StringIO("from stdin\n")) == "from stdin\n"
    assert read_prompt("as given", io.StringIO("unused")) == "as given"


def test_prompt_is_a_user_message_unless_raw() -> None:
    assert prompt_fields("hi", raw=False) == {"messages": [{"role": "user", "content": "hi"}]}
    assert prompt_fields("hi", raw=True) == {"prompt": "hi"}
    assert chat_messages("hi", system="be brief") == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]


def test_pop_sampling_uses_the_shells_defaults_for_unset_flags() -> None:
    options = {
        "max_tokens": 5,
        "temperature": None,
        "top_p": None,
        "top_k": None,
        "min_p": None,
        "seed": 3,
        "stop": ("\n",),
        "model": "m",
        "nice": 1,
    }
    params = pop_sampling(options)
    assert (params.max_tokens, params.seed, params.stop) == (5, 3, ["\n"])
    assert (params.temperature, params.top_p, params.top_k) == (0.2, 0.9, 0)
    assert options == {"model": "m", "nice": 1}


def test_pop_sampling_rejects_an_empty_stop_string() -> None:
    options = {
        "max_tokens": None,
        "temperature": None,
        "top_p": None,
        "top_k": None,
        "min_p": None,
        "seed": None,
        "stop": ("",),
    }
    with pytest.raises(InvalidArgument):
        pop_sampling(options)


def test_kernel_env_sets_only_the_given_flags() -> None:
    sock = Path("/tmp/k.sock")
    env = kernel_env(kernel_overrides(sock, ("a", "b"), "float32", None), {"PATH": "/bin"})
    assert env == {
        "PATH": "/bin",
        "LLMOS_SOCKET": "/tmp/k.sock",
        "LLMOS_MODELS": '["a", "b"]',
        "LLMOS_DTYPE": "float32",
    }
    assert kernel_overrides(sock, (), None, None) == {"socket": sock}
    assert default_log_file(sock) == Path("/tmp/k.sock.log")


# -- streams and rendering ------------------------------------------------------


def scripted_stream(*events: Reply) -> ProcessStream:
    """A real ProcessStream fed from a fixed list of events instead of a connection."""
    return ProcessStream(7, iter(events).__next__, lambda: None)


def test_echo_stream_prints_chunks_then_a_newline(capsys: pytest.CaptureFixture[str]) -> None:
    stream = scripted_stream(
        TokenEvent(pid=7, text="Hel", token_ids=[1]),
        TokenEvent(pid=7, text="", token_ids=[2]),
        TokenEvent(pid=7, text="lo", token_ids=[3]),
        ExitEvent(pid=7, status="stop"),
    )
    assert echo_stream(stream) == Outcome(7, "stop")
    assert capsys.readouterr().out == "Hello\n"


def test_a_waiting_chat_turn_succeeds_and_is_not_an_exit() -> None:
    stream = scripted_stream(WaitingEvent(pid=7, finish="stop"))
    outcome = echo_stream(stream)
    assert (outcome.exit_code, outcome.is_exited) == (0, False)


@pytest.mark.parametrize(
    ("status", "exit_code"),
    [("stop", 0), ("length", 0), ("killed", 1), ("error", 1), ("shutdown", 1)],
)
def test_outcome_exit_codes(status: str, exit_code: int) -> None:
    assert Outcome(1, status).exit_code == exit_code


def test_units() -> None:
    assert [format_bytes(n) for n in (512, 1536, 3 * 1024**3)] == ["512 B", "1.5 KiB", "3.0 GiB"]
    assert [format_duration(s) for s in (2.5, 42, 75, 3700, 90061)] == [
        "2.5s",
        "42s",
        "1m 15s",
        "1h 01m",
        "1d 1h",
    ]


def test_ps_row_and_key_value_text() -> None:
    proc = ProcInfo(
        pid=3,
        ppid=1,
        uid=1000,
        model="m",
        state="zombie",
        nice=0,
        created_at=100.0,
        num_prompt_tokens=5,
        num_generated_tokens=9,
        exit_status="stop",
    )
    assert ps_row(proc, now=130.0) == [
        "3",
        "1",
        "1000",
        "m",
        "zombie",
        "0",
        "5",
        "9",
        "0",
        "0.0s",
        "-",
        "stop",
        "30s",
    ]
    assert key_value_text([("a", "1"), ("long", "2")]) == "a     1\nlong  2"
