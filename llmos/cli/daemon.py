"""``up``, ``down`` and ``status``: the kernel daemon's lifecycle."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import click

from llmos.cli import launch
from llmos.cli.app import (
    EXIT_FAILURE,
    Shell,
    echo_error,
    echo_json,
    is_tty,
    json_option,
    pass_shell,
)
from llmos.cli.progress import activity
from llmos.cli.render import format_duration, key_value_text, sysinfo_rows
from llmos.syscalls.replies import SysinfoReply


@click.command()
@click.option("--foreground", is_flag=True, help="Run the kernel in this process until it stops.")
@click.option(
    "--model",
    "-m",
    "models",
    multiple=True,
    help="Model to load at boot (repeatable)  [default: default]",
)
@click.option("--dtype", help="Weights and KV dtype, e.g. bfloat16 or float32.")
@click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Where models are cached."
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Kernel log in the background  [default: <socket>.log]",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.0),
    default=300.0,
    show_default=True,
    help="Seconds to wait for a background kernel to answer.",
)
@json_option
@pass_shell
def up(
    shell: Shell,
    foreground: bool,
    models: tuple[str, ...],
    dtype: str | None,
    data_dir: Path | None,
    log_file: Path | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Start the kernel, in the background unless --foreground.

    In the background, waits until the kernel answers on the socket (it
    loads its models first), then prints its socket and pid. A kernel that
    already answers is left alone (exit 0).
    """
    overrides = launch.kernel_overrides(shell.socket_path, models, dtype, data_dir)
    if foreground:
        raise SystemExit(run_foreground(overrides))
    running = launch.probe(shell.socket_path)
    if running is not None:
        report_up(shell, running, None, already_running=True, as_json=as_json)
        return
    log_file = log_file or launch.default_log_file(shell.socket_path)
    info = start_in_background(shell, overrides, log_file, timeout)
    report_up(shell, info, log_file, already_running=False, as_json=as_json)


def run_foreground(overrides: dict[str, object]) -> int:
    """Run the kernel in this process; its exit code."""
    from llmos.kernel.main import run  # the kernel pulls in torch: import it only here
    from llmos.kernel.settings import KernelSettings

    return int(run(KernelSettings(**overrides)))


def start_in_background(
    shell: Shell, overrides: dict[str, object], log_file: Path, timeout: float
) -> SysinfoReply:
    """Start the kernel and wait for it to answer; exit 1 if it dies or is too slow."""
    offset = launch.log_size(log_file)  # the log is appended to: show only this run's lines
    child = launch.start_kernel(launch.kernel_env(overrides, dict(os.environ)), log_file)
    started = time.monotonic()
    try:
        with activity("starting kernel, loading model…", enabled=is_tty(sys.stderr)):
            info = launch.wait_until_up(child, shell.socket_path, timeout)
    except BaseException:  # Ctrl-C included: do not leave a half-started kernel behind
        launch.stop_child(child)
        raise
    if info is None:
        fail_start(child, time.monotonic() - started)
        tail = launch.log_tail(log_file, offset)
        click.echo(f"--- {log_file} ---\n{tail}" if tail else f"(nothing in {log_file})", err=True)
        raise SystemExit(EXIT_FAILURE)
    return info


def fail_start(child: subprocess.Popen[bytes], elapsed: float) -> None:
    """Say why a kernel did not come up; stop it if it still runs."""
    was_running = child.poll() is None
    launch.stop_child(child)
    if was_running:
        echo_error(f"the kernel did not answer within {format_duration(elapsed)}; stopped it")
    else:
        echo_error(f"the kernel exited with status {child.returncode} while starting")


def report_up(
    shell: Shell,
    info: SysinfoReply,
    log_file: Path | None,
    *,
    already_running: bool,
    as_json: bool,
) -> None:
    """Say where the kernel listens and its pid."""
    if as_json:
        log = str(log_file) if log_file else None
        echo_json(
            {
                "socket": str(shell.socket_path),
                "kernel_pid": info.kernel_pid,
                "already_running": already_running,
                "log_file": log,
            }
        )
        return
    verb = "is already running" if already_running else "is up"
    click.echo(f"kernel {info.kernel_pid} {verb} on {shell.socket_path}")
    if log_file:
        click.echo(f"log: {log_file}")


@click.command()
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.0),
    default=60.0,
    show_default=True,
    help="Seconds to wait for the kernel to exit.",
)
@click.option(
    "--hibernate",
    is_flag=True,
    help="Save running processes to disk too; the next `up` resumes them.",
)
@json_option
@pass_shell
def down(shell: Shell, timeout: float, hibernate: bool, as_json: bool) -> None:
    """Stop the kernel: running processes end with status `shutdown`.

    Stopped processes (`kill -s STOP`) are always saved to disk with their
    KV pages, and with --hibernate running ones too; the next `up` brings
    them back with the same pids. Waits until the kernel has exited. With
    no kernel running, says so and exits 0.
    """
    info = launch.probe(shell.socket_path)
    if info is None:
        report_down(shell, None, as_json)
        return
    launch.request_shutdown(shell.socket_path, hibernate=hibernate)
    if not launch.wait_until_down(shell.socket_path, info.kernel_pid, timeout):
        echo_error(f"kernel {info.kernel_pid} is still running after {timeout:g} s")
        raise SystemExit(EXIT_FAILURE)
    report_down(shell, info.kernel_pid, as_json)


def report_down(shell: Shell, pid: int | None, as_json: bool) -> None:
    """Say the kernel stopped, or that none was running."""
    if as_json:
        echo_json({"socket": str(shell.socket_path), "kernel_pid": pid, "stopped": pid is not None})
    elif pid is None:
        click.echo(f"no kernel is running on {shell.socket_path}")
    else:
        click.echo(f"kernel {pid} stopped")


@click.command()
@json_option
@pass_shell
def status(shell: Shell, as_json: bool) -> None:
    """Show whether the kernel runs, and its vitals.

    Version, pid, uptime, device, driver, policy and loaded models.
    Exits 3 if no kernel runs on the socket.
    """
    with shell.connect() as client:
        info = client.sysinfo()
    if as_json:
        echo_json(info)
        return
    click.echo(f"llmos kernel on {shell.socket_path}: running")
    click.echo(key_value_text(sysinfo_rows(info)))


COMMANDS = (up, down, status)
