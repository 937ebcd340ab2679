"""The daemon's lifecycle and its guards, on a real kernel with a tiny random model.

Boot, the socket's mode, one kernel per socket, stale files from a crash,
SIGTERM mid-stream, shutdown by syscall, permissions, keep-alive and zombie
reaping. (The real default model's end-to-end tests are in test_kernel_e2e.)
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from kernelproc import running_kernel, short_socket_dir, start_kernel
from seamkernel import kernel_with_uids

from llmos.syscalls.client import Client
from llmos.syscalls.errors import Busy, InvalidArgument, NotFound, PermissionDenied, ProtocolError
from llmos.syscalls.framing import frame, recv_frame
from llmos.syscalls.protocol import decode_reply, encode
from llmos.syscalls.replies import Error
from llmos.syscalls.requests import Hello, Spawn
from llmos.syscalls.sampling import SamplingParams

LONG = {"max_tokens": 200, "ignore_eos": True, "temperature": 0.0}


def test_boot_socket_mode_and_clean_down(tiny_model_dir: Path) -> None:
    with running_kernel([str(tiny_model_dir)]) as kernel:
        mode = stat.S_IMODE(kernel.socket.stat().st_mode)
        assert mode == 0o600
        assert kernel.pidfile.read_text().strip() == str(kernel.process.pid)
        with Client(kernel.socket) as client:
            info = client.sysinfo()
            assert info.kernel_pid == kernel.process.pid
            assert info.models == [str(tiny_model_dir)]
            client.shutdown()
        assert kernel.process.wait(30) == 0
    # running_kernel checked: exit 0, no socket, no pidfile


def test_second_kernel_on_the_same_socket_refuses(tiny_model_dir: Path) -> None:
    with running_kernel([]) as kernel:
        env = dict(os.environ, LLMOS_SOCKET=str(kernel.socket), LLMOS_MODELS="[]")
        second = subprocess.run(
            [sys.executable, "-m", "llmos.kernel"], env=env, capture_output=True, timeout=60
        )
        assert second.returncode == 1
        message = second.stderr.decode()
        assert "already running" in message and str(kernel.process.pid) in message
        with Client(kernel.socket) as client:
            assert client.sysinfo().kernel_pid == kernel.process.pid


def test_stale_socket_and_pidfile_are_cleaned_up() -> None:
    folder = short_socket_dir()
    path = folder / "k.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))
    dead.close()  # a socket file nobody listens on, as a SIGKILLed kernel leaves
    Path(f"{path}.pid").write_text("999999\n")
    kernel = start_kernel(path, [])
    try:
        with Client(path) as client:
            assert client.sysinfo().kernel_pid == kernel.process.pid
        assert "stale socket" in kernel.log_text()
    finally:
        assert kernel.stop() == 0
    assert not path.exists() and not Path(f"{path}.pid").exists()


def test_sigterm_ends_running_processes_with_shutdown_status(tiny_model_dir: Path) -> None:
    with running_kernel([str(tiny_model_dir)]) as kernel, Client(kernel.socket) as client:
        stream = client.run("hello there", **LONG)
        next(iter(stream))
        started = time.monotonic()
        kernel.process.send_signal(signal.SIGTERM)
        events = list(stream)
        assert stream.exit_status == "shutdown", events[-3:]
        assert kernel.process.wait(15) == 0
        assert time.monotonic() - started < 15


def test_hello_with_another_protocol_version_is_refused(tiny_model_dir: Path) -> None:
    with running_kernel([]) as kernel, socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(kernel.socket))
        sock.sendall(frame(encode(Hello(id=7, version=999))))
        reply = decode_reply(recv_frame(sock, 1 << 20) or b"")
        assert isinstance(reply, Error) and reply.code == ProtocolError.code
        assert reply.id == 7 and "protocol 999" in reply.message


def test_bad_calls_get_typed_errors_and_lose_nothing(tiny_model_dir: Path) -> None:
    with running_kernel([str(tiny_model_dir)]) as kernel, Client(kernel.socket) as client:
        with pytest.raises(NotFound):
            client.spawn("hi", model="no-such-model")
        with pytest.raises(InvalidArgument):
            client.spawn("hi", max_tokens=-1)
        with pytest.raises(InvalidArgument):
            client.spawn("hi", nice=40)
        with pytest.raises(NotFound):
            client.kill(4242)
        with pytest.raises(NotFound):
            client.wait(4242)
        pid = client.spawn("hi", **LONG)
        with pytest.raises(InvalidArgument):
            client.write(pid, "not a chat process")
        with pytest.raises(InvalidArgument):
            client.fork(pid, 100)  # more children than a fork may make: refused, not clamped
        with pytest.raises(Busy):
            client.unload(str(tiny_model_dir))
        client.kill(pid)
        assert client.wait(pid).proc.exit_status == "killed"
        [pool] = client.meminfo().pools
        assert pool.num_free == pool.num_pages


def test_another_uid_cannot_kill_your_process(tiny_model_dir: Path) -> None:
    """A real second user where the suite runs as root: the socket is shared with a
    group (0660) and the intruder connects as uid/gid 65534 (nobody/nogroup)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to act as a second user (the seam test covers this case)")
    import grp

    group = grp.getgrgid(65534).gr_name
    with running_kernel([str(tiny_model_dir)], socket_group=group) as kernel:
        os.chmod(kernel.socket.parent, 0o755)
        assert stat.S_IMODE(kernel.socket.stat().st_mode) == 0o660
        with Client(kernel.socket) as owner:
            pid = owner.spawn("hello", **LONG)
            owner.kill(pid, "STOP")  # parked, so it is surely still alive below
            intruder = subprocess.run(
                [sys.executable, "-c", INTRUDER, str(kernel.socket), str(pid)],
                capture_output=True,
                timeout=60,
            )
            assert intruder.stdout.decode().strip() == "EPERM 65534", intruder.stderr.decode()
            assert owner.proc(pid).state == "stopped"
            owner.kill(pid)
            owner.wait(pid)


INTRUDER = """
import os, sys
from llmos.syscalls.client import Client
from llmos.syscalls.errors import LlmosError
os.setgid(65534); os.setuid(65534)  # after the imports: nobody may not read this tree
client = Client(sys.argv[1])
try:
    client.kill(int(sys.argv[2]))
    print("killed", client.uid)
except LlmosError as exc:
    print(exc.code, client.uid)
"""


def test_models_unload_after_keep_alive_and_zombies_after_ttl(tiny_model_dir: Path) -> None:
    with running_kernel([], keep_alive=1.0, zombie_ttl=1.0) as kernel, Client(kernel.socket) as c:
        assert c.models() == []
        info = c.load(str(tiny_model_dir))
        assert info.loaded and info.keep_alive == 1.0
        pid = c.spawn("hi", model=str(tiny_model_dir), max_tokens=3)
        deadline = time.monotonic() + 20
        while c.models() or c.ps(all=True):
            assert time.monotonic() < deadline, (c.models(), c.ps(all=True))
            time.sleep(0.2)
        with pytest.raises(NotFound):
            c.proc(pid)


def test_streams_from_two_clients_at_once(tiny_model_dir: Path) -> None:
    texts: dict[int, str] = {}

    def generate(index: int, path: Path) -> None:
        with Client(path) as client:
            stream = client.run("the same prompt", max_tokens=20, temperature=0.0)
            for _ in stream:
                pass
            texts[index] = stream.text
            client.wait(stream.pid)

    with running_kernel([str(tiny_model_dir)]) as kernel:
        threads = [threading.Thread(target=generate, args=(i, kernel.socket)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(texts) == 2 and texts[0] == texts[1] and texts[0]


def test_kill_needs_owner_through_the_credentials_seam(tiny_model_dir: Path) -> None:
    """Where no second user exists, the one seam that reads SO_PEERCRED is replaced."""
    with kernel_with_uids([str(tiny_model_dir)]) as (path, set_uid), Client(path) as alice:
        pid = alice.spawn("hello", **LONG)
        alice.kill(pid, "STOP")  # parked, so it is surely still alive below
        set_uid(1000)
        with Client(path) as mallory:
            assert (alice.uid, mallory.uid) == (0, 1000)
            assert mallory.ps() == [] and [p.pid for p in mallory.ps(all=True)] == [pid]
            with pytest.raises(PermissionDenied):
                mallory.kill(pid)
            with pytest.raises(PermissionDenied):
                mallory.wait(pid)
            with pytest.raises(PermissionDenied):
                mallory.shutdown()
            with pytest.raises(PermissionDenied):
                mallory.spawn("hi", nice=-5)
        assert alice.proc(pid).state == "stopped"
        alice.kill(pid)
        assert alice.wait(pid).proc.exit_status == "killed"


def test_llmosctl_up_daemonizes_and_down_leaves_nothing(tiny_model_dir: Path) -> None:
    folder = short_socket_dir()
    path = folder / "k.sock"
    ctl = [sys.executable, "-m", "llmos.cli", "--socket", str(path)]
    env = dict(os.environ, LLMOS_DTYPE="float32", LLMOS_KV_BUDGET=str(32 * 1024**2))
    up = subprocess.run(
        [*ctl, "up", "--model", str(tiny_model_dir)], env=env, capture_output=True, timeout=120
    )
    assert up.returncode == 0, up.stderr.decode()
    pid = int(Path(f"{path}.pid").read_text())
    status = subprocess.run([*ctl, "status"], capture_output=True, timeout=60)
    assert status.returncode == 0 and str(pid) in status.stdout.decode()
    down = subprocess.run([*ctl, "down"], capture_output=True, timeout=60)
    assert down.returncode == 0, down.stderr.decode()
    assert not path.exists() and not Path(f"{path}.pid").exists()
    gone = subprocess.run([*ctl, "status"], capture_output=True, timeout=60)
    assert gone.returncode == 3


def test_a_client_that_never_reads_does_not_stall_the_engine(tiny_model_dir: Path) -> None:
    model = str(tiny_model_dir)
    with (
        running_kernel([model], stream_buffer=16) as kernel,
        socket.socket(socket.AF_UNIX) as stuck,
        Client(kernel.socket) as client,
    ):
        stuck.connect(str(kernel.socket))
        stuck.sendall(frame(encode(Hello(id=1, version=1))))
        params = SamplingParams(max_tokens=150, ignore_eos=True)
        hog = Spawn(id=2, model=model, prompt="x", params=params, stream=True)
        stuck.sendall(frame(encode(hog)))  # ...and never reads a byte
        started = time.monotonic()
        text = client.generate("hello", model=model, max_tokens=50)
        assert text and time.monotonic() - started < 30
        deadline = time.monotonic() + 30
        while any(row.state != "zombie" for row in client.ps()):
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_stream_replays_a_finished_process_from_the_start(tiny_model_dir: Path) -> None:
    with running_kernel([str(tiny_model_dir)]) as kernel, Client(kernel.socket) as client:
        pid = client.spawn("once upon", max_tokens=12, temperature=0.0)
        waited_for = client.stream(pid)
        list(waited_for)
        replay = client.stream(pid, from_start=True)
        events = list(replay)
        assert replay.text == waited_for.text and replay.exit_status == "length"
        assert len(events) == 13  # 12 tokens and the exit
        only_end = client.stream(pid, from_start=False)
        assert [type(e).__name__ for e in only_end] == ["ExitEvent"]
        assert client.wait(pid).text == replay.text
