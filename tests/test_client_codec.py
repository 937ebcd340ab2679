"""The clients' side of the wire: handshake, id demultiplexing, streams, errors, lost connections.

These run against :class:`FakeKernel`, a scripted stand-in for the daemon;
the end-to-end tests against the real kernel live elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

import llmos
from llmos.syscalls.aclient import AsyncClient
from llmos.syscalls.calls import MessageLike
from llmos.syscalls.client import Client
from llmos.syscalls.errors import (
    Interrupted,
    InvalidArgument,
    KernelUnavailable,
    LlmosError,
    NotFound,
    ProtocolError,
    TimedOut,
)
from llmos.syscalls.events import ExitEvent, TokenEvent, WaitingEvent
from llmos.syscalls.framing import frame, recv_frame
from llmos.syscalls.protocol import PROTOCOL_VERSION, decode_request, encode
from llmos.syscalls.replies import (
    Error,
    HelloReply,
    Loaded,
    ModelInfo,
    Ok,
    ProcInfo,
    ProcReply,
    Reply,
    Spawned,
    Waited,
)
from llmos.syscalls.requests import Hello, Message, Proc, Request, Shutdown, Spawn, Stream, Wait
from llmos.syscalls.sampling import SamplingParams


class Session:
    """One client connection as the fake kernel sees it."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def send(self, *messages: Reply) -> None:
        """Send frames to the client, in order."""
        with self.lock:
            for message in messages:
                self.conn.sendall(frame(encode(message)))

    def send_raw(self, payload: bytes) -> None:
        """Send one frame holding arbitrary bytes."""
        with self.lock:
            self.conn.sendall(frame(payload))

    def hang_up(self) -> None:
        """Close the connection as a dying kernel would."""
        self.conn.shutdown(socket.SHUT_RDWR)


Handler = Callable[[Request, Session], None]


class FakeKernel:
    """Test double: stands in for the daemon only to exercise the client's framing and demux.

    It answers ``hello`` itself (or refuses it with EPROTO when told to) and
    hands every other request, with its session, to ``handler``. It has no
    processes, models or scheduler.
    """

    def __init__(self, handler: Handler, *, refuse_hello: bool = False) -> None:
        self.handler = handler
        self.refuse_hello = refuse_hello
        self.dir = tempfile.mkdtemp(dir="/tmp", prefix="llmos-")
        self.path = Path(self.dir) / "k.sock"
        self.hellos: list[Hello] = []
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def __enter__(self) -> FakeKernel:
        self._listener.bind(os.fspath(self.path))
        self._listener.listen()
        self._listener.settimeout(0.02)
        self._spawn_thread(self._accept_loop)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for conn in list(self._conns):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(timeout=2)
        for conn in self._conns:
            conn.close()
        self._listener.close()
        shutil.rmtree(self.dir)

    def _spawn_thread(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            self._conns.append(conn)
            self._spawn_thread(self._serve, Session(conn))

    def _serve(self, session: Session) -> None:
        try:
            while (payload := recv_frame(session.conn, 1 << 20)) is not None:
                self._answer(decode_request(payload), session)
        except OSError:
            pass  # the client or the test hung up

    def _answer(self, request: Request, session: Session) -> None:
        if not isinstance(request, Hello):
            self.handler(request, session)
        elif self.refuse_hello:
            session.send(Error(id=request.id, code="EPROTO", message="version mismatch"))
        else:
            self.hellos.append(request)
            session.send(HelloReply(id=request.id, version=1, kernel_version="fake", uid=7))


def proc_info(pid: int) -> ProcInfo:
    return ProcInfo(pid=pid, ppid=0, uid=7, model="fake", state="running", nice=0)


def tokens(request_id: int, pid: int, *texts: str) -> list[Reply]:
    return [TokenEvent(id=request_id, pid=pid, text=t, token_ids=[len(t)]) for t in texts]


def run_stream(request: Request, session: Session) -> None:
    """Answer a streaming spawn with pid 5, two tokens (and an empty one), then exit."""
    assert isinstance(request, Spawn) and request.stream
    events = tokens(request.id, 5, "Hel", "", "lo")
    session.send(Spawned(id=request.id, pid=5), *events)
    session.send(ExitEvent(id=request.id, pid=5, status="stop"))


@pytest.fixture
def kernel_path() -> Iterator[Path]:
    with FakeKernel(run_stream) as kernel:
        yield kernel.path


def test_hello_sets_identity_and_sends_protocol_version() -> None:
    with FakeKernel(run_stream) as kernel, Client(kernel.path, name="tester") as client:
        assert (client.uid, client.kernel_version) == (7, "fake")
        assert kernel.hellos == [Hello(id=1, version=PROTOCOL_VERSION, client="tester")]


def test_refused_hello_raises_protocol_error() -> None:
    with FakeKernel(run_stream, refuse_hello=True) as kernel, pytest.raises(ProtocolError):
        Client(kernel.path)


def test_missing_socket_says_how_to_start_a_kernel() -> None:
    path = Path(tempfile.gettempdir()) / "llmos-no-such-dir" / "kernel.sock"
    with pytest.raises(KernelUnavailable) as info:
        Client(path)
    assert info.value.message == f"no kernel is listening on {path}; start one with `llmosctl up`"


def test_stale_socket_file_is_kernel_unavailable() -> None:
    with FakeKernel(run_stream) as kernel:
        stale = kernel.path.with_name("stale.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind(os.fspath(stale))  # bound, never listening: connect is refused
            with pytest.raises(KernelUnavailable, match="no kernel is listening"):
                Client(stale)


def test_process_stream_accumulates_until_the_terminal_event(kernel_path: Path) -> None:
    with Client(kernel_path) as client:
        stream = client.run("hi", max_tokens=3)
        events = list(stream)
        assert stream.pid == 5
        assert [type(e) for e in events] == [TokenEvent] * 3 + [ExitEvent]
        assert (stream.text, stream.token_ids, stream.exit_status) == ("Hello", [3, 0, 2], "stop")
        assert stream.final == events[-1]
        assert next(stream, None) is None
        assert list(client.run("hi").text_chunks()) == ["Hel", "lo"]


def test_replies_are_routed_by_id_not_by_order() -> None:
    held: list[Proc] = []
    both_arrived = threading.Barrier(3)

    def reverse(request: Request, session: Session) -> None:
        assert isinstance(request, Proc)
        held.append(request)
        if len(held) == 2:
            for r in reversed(held):
                session.send(ProcReply(id=r.id, proc=proc_info(r.pid)))

    results: dict[int, int] = {}
    with FakeKernel(reverse) as kernel, Client(kernel.path, timeout=2) as client:

        def ask(pid: int) -> None:
            both_arrived.wait()
            results[pid] = client.proc(pid).pid

        threads = [threading.Thread(target=ask, args=(pid,)) for pid in (11, 22)]
        for t in threads:
            t.start()
        both_arrived.wait()
        for t in threads:
            t.join()
    assert results == {11: 11, 22: 22}


def test_interleaved_streams_each_get_their_own_events() -> None:
    streams: list[Request] = []

    def interleave(request: Request, session: Session) -> None:
        streams.append(request)
        assert isinstance(request, Stream)
        session.send(Ok(id=request.id))
        if len(streams) == 2:
            a, b = streams
            session.send(*tokens(a.id, 1, "a1"), *tokens(b.id, 2, "b1"), *tokens(a.id, 1, "a2"))
            session.send(WaitingEvent(id=b.id, pid=2, finish="stop"))
            session.send(ExitEvent(id=a.id, pid=1, status="length"))

    with FakeKernel(interleave) as kernel, Client(kernel.path, timeout=2) as client:
        first, second = client.stream(1), client.stream(2, from_start=False)
        assert (first.pid, second.pid) == (1, 2)
        assert list(second.text_chunks()) == ["b1"]
        assert second.exit_status is None and isinstance(second.final, WaitingEvent)
        assert first.text == "" and list(first.text_chunks()) == ["a1", "a2"]
        assert first.exit_status == "length"


def test_error_replies_become_typed_errors() -> None:
    def refuse(request: Request, session: Session) -> None:
        code = "ENOENT" if isinstance(request, Proc) else "EWEIRD"
        session.send(Error(id=request.id, code=code, message="nope"))

    with FakeKernel(refuse) as kernel, Client(kernel.path) as client:
        with pytest.raises(NotFound, match="ENOENT: nope"):
            client.proc(3)
        with pytest.raises(LlmosError) as info:
            client.kill(3)
        assert info.value.code == "EWEIRD"
        with pytest.raises(LlmosError, match="EWEIRD"):
            client.run("x")  # an error as the head reply of a stream


def test_error_mid_stream_ends_the_stream() -> None:
    def drop_subscriber(request: Request, session: Session) -> None:
        session.send(Spawned(id=request.id, pid=4), *tokens(request.id, 4, "a"))
        session.send(Error(id=request.id, code="EINTR", message="too slow"))

    with FakeKernel(drop_subscriber) as kernel, Client(kernel.path, timeout=2) as client:
        stream = client.run("x")
        assert isinstance(next(stream), TokenEvent)
        with pytest.raises(Interrupted, match="too slow"):
            next(stream)
        assert stream.text == "a" and stream.final is None
        assert next(stream, None) is None


def test_connection_closed_mid_call_interrupts_it() -> None:
    def die(request: Request, session: Session) -> None:
        session.hang_up()

    with FakeKernel(die) as kernel, Client(kernel.path, timeout=2) as client:
        with pytest.raises(Interrupted, match="closed the connection"):
            client.wait(1)
        with pytest.raises(Interrupted):
            client.ps()


def test_timeout_and_late_replies_are_discarded() -> None:
    late: list[Request] = []

    def slow(request: Request, session: Session) -> None:
        if isinstance(request, Proc) and request.pid == 1:
            late.append(request)  # answered only with the next request
            return
        for r in late:
            session.send(ProcReply(id=r.id, proc=proc_info(1)))
        session.send(ProcReply(id=request.id, proc=proc_info(2)))

    with FakeKernel(slow) as kernel, Client(kernel.path) as client:
        client.timeout = 0.05
        with pytest.raises(TimedOut):
            client.proc(1)
        client.timeout = 2
        assert client.proc(2).pid == 2


def test_wait_is_bounded_by_the_kernel_limit_not_the_connection_timeout() -> None:
    def answer_late(request: Request, session: Session) -> None:
        assert isinstance(request, Wait) and request.timeout == 5
        threading.Timer(
            0.1, session.send, [Waited(id=request.id, proc=proc_info(1), text="t", token_ids=[])]
        ).start()

    with FakeKernel(answer_late) as kernel, Client(kernel.path) as client:
        client.timeout = 0.02
        assert client.wait(1, timeout=5).text == "t"


def test_spawn_merges_sampling_and_converts_messages() -> None:
    seen: list[Spawn] = []

    def record(request: Request, session: Session) -> None:
        assert isinstance(request, Spawn)
        seen.append(request)
        session.send(Spawned(id=request.id, pid=9))

    base = SamplingParams(max_tokens=5, top_k=3)
    messages: list[MessageLike] = [{"role": "user", "content": "hi"}, Message("assistant", "yo")]
    with FakeKernel(record) as kernel, Client(kernel.path) as client:
        assert client.spawn(messages=messages, params=base, temperature=0, stop=("x",)) == 9
        with pytest.raises(InvalidArgument, match="unknown sampling"):
            client.spawn("x", temprature=0)
        with pytest.raises(InvalidArgument, match="bad chat message"):
            client.spawn(messages=[{"role": "user"}])
    (spawn,) = seen
    assert spawn.params == SamplingParams(max_tokens=5, top_k=3, temperature=0.0, stop=["x"])
    assert spawn.messages == [Message("user", "hi"), Message("assistant", "yo")]
    assert spawn.id != 0 and not spawn.stream


def test_undecodable_reply_fails_only_its_call() -> None:
    def garble(request: Request, session: Session) -> None:
        if isinstance(request, Proc):
            session.send_raw(msgspec.msgpack.encode({"id": request.id, "type": "mystery"}))
        else:
            session.send(Ok(id=request.id))

    with FakeKernel(garble) as kernel, Client(kernel.path, timeout=2) as client:
        with pytest.raises(ProtocolError, match="bad message from the kernel"):
            client.proc(1)
        client.unload("m")


def test_shutdown_counts_a_closed_connection_as_done() -> None:
    def stop(request: Request, session: Session) -> None:
        assert isinstance(request, Shutdown)
        session.hang_up()

    with FakeKernel(stop) as kernel, Client(kernel.path, timeout=2) as client:
        client.shutdown()


def test_generate_raises_when_the_process_failed() -> None:
    def fail(request: Request, session: Session) -> None:
        if isinstance(request, Spawn):
            session.send(Spawned(id=request.id, pid=3))
            return
        proc = msgspec.structs.replace(proc_info(3), exit_status="error", error="driver crashed")
        session.send(Waited(id=request.id, proc=proc, text="", token_ids=[]))

    with (
        FakeKernel(fail) as kernel,
        Client(kernel.path, timeout=2) as client,
        pytest.raises(LlmosError, match="EIO: driver crashed"),
    ):
        client.generate("x")


def sdk_kernel(request: Request, session: Session) -> None:
    """Load, spawn-and-wait (echoing the prompt or the last message) and streaming spawn."""
    match request:
        case Spawn(stream=True):
            run_stream(request, session)
        case Spawn():
            text = request.prompt or (request.messages or [])[-1].content
            session.send(Spawned(id=request.id, pid=len(text)))
        case Wait():
            echo = "x" * request.pid
            session.send(
                Waited(id=request.id, proc=proc_info(request.pid), text=echo, token_ids=[])
            )
        case _:
            session.send(Loaded(id=request.id, model=ModelInfo(name="smol", loaded=True)))


def test_sdk_model_generates_streams_and_chats() -> None:
    with FakeKernel(sdk_kernel) as kernel, llmos.load_model(socket_path=kernel.path) as model:
        assert model.name == "smol"
        assert model.generate("abc", max_tokens=2) == "xxx"
        assert model.chat("hello") == "xxxxx"
        assert list(model.stream("hi")) == ["Hel", "lo"]


def test_async_client_streams_and_demultiplexes(kernel_path: Path) -> None:
    async def main() -> tuple[str, str, str | None]:
        async with AsyncClient(kernel_path, timeout=2) as client:
            first, second = await asyncio.gather(client.run("a"), client.run("b"))
            chunks = [c async for c in second.text_chunks()]
            async for _ in first:
                pass
            return "".join(chunks), first.text, first.exit_status

    assert asyncio.run(main()) == ("Hello", "Hello", "stop")


def test_async_client_connect_and_lost_connection() -> None:
    def die(request: Request, session: Session) -> None:
        session.hang_up()

    async def main(path: Path) -> None:
        client = await AsyncClient.connect(path, timeout=2)
        assert client.uid == 7
        with pytest.raises(Interrupted):
            await client.ps()
        await client.close()
        with pytest.raises(KernelUnavailable, match="no kernel is listening"):
            await AsyncClient.connect(path.with_name("nothing.sock"))

    with FakeKernel(die) as kernel:
        asyncio.run(main(kernel.path))


def test_import_llmos_stays_cheap() -> None:
    code = (
        "import sys, llmos; "
        "print(sorted(m for m in sys.modules if m.startswith(('llmos', 'torch', 'msgspec'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['llmos']"
