"""The blocking client: one Unix-socket connection to the kernel, many calls in flight.

A daemon thread reads frames and routes each to the call with its id, so
several threads (or several open streams) may share one :class:`Client`::

    with Client() as kernel:
        pid = kernel.spawn("Once upon a time", max_tokens=32)
        print(kernel.wait(pid).text)
        for chunk in kernel.run("Hello", temperature=0).text_chunks():
            print(chunk, end="")
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, overload

import msgspec

from llmos.syscalls.calls import (
    MessageLike,
    Router,
    StreamRequest,
    expect,
    hello_request,
    plugin_call,
    plugin_result,
    raise_if_error,
    spawn_request,
    stream_pid,
    unavailable,
    wait_timeout,
    waited_text,
)
from llmos.syscalls.errors import Interrupted, TimedOut
from llmos.syscalls.framing import DEFAULT_MAX_FRAME, FramingError, frame, recv_frame
from llmos.syscalls.paths import default_socket_path
from llmos.syscalls.protocol import encode
from llmos.syscalls.replies import (
    Forked,
    HelloReply,
    Loaded,
    MeminfoReply,
    ModelInfo,
    ModelsReply,
    Ok,
    PageEntry,
    PluginsReply,
    ProcInfo,
    ProcReply,
    PsReply,
    Reply,
    SchedReply,
    Spawned,
    SysinfoReply,
    Waited,
)
from llmos.syscalls.requests import (
    Fork,
    Kill,
    Load,
    Meminfo,
    Models,
    Plugins,
    Proc,
    Ps,
    Renice,
    Request,
    Sched,
    Shutdown,
    Signal,
    Stream,
    Sysinfo,
    Unload,
    Wait,
    Write,
)
from llmos.syscalls.sampling import SamplingParams
from llmos.syscalls.streams import ProcessStream

Inbox = queue.Queue[Reply]


def connect_unix(path: Path) -> socket.socket:
    """A connected stream socket; :class:`KernelUnavailable` if nothing listens at ``path``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(os.fspath(path))
    except OSError as exc:
        sock.close()
        raise unavailable(path, exc) from exc
    return sock


class Client:
    """A blocking connection to the kernel; every syscall is a method.

    ``timeout`` bounds each wait for a message from the kernel (a reply or
    a stream event) and raises :class:`TimedOut`; ``wait`` waits as long as
    the kernel does. A lost connection fails every call with :class:`Interrupted`.
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str] | None = None,
        *,
        timeout: float | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        name: str = "llmos-sdk",
    ) -> None:
        self.socket_path = Path(socket_path) if socket_path else default_socket_path()
        self.timeout = timeout
        self._max_frame = max_frame
        self._router: Router[Inbox] = Router(queue.Queue)
        self._send_lock = threading.Lock()
        self._sock = connect_unix(self.socket_path)
        self._reader = threading.Thread(target=self._read_loop, name="llmos-client", daemon=True)
        self._reader.start()
        try:
            hello = expect(self.call(hello_request(name)), HelloReply)
        except BaseException:
            self.close()
            raise
        self.uid = hello.uid
        self.kernel_version = hello.kernel_version

    # -- plumbing ---------------------------------------------------------

    def _read_loop(self) -> None:
        reason = "the kernel closed the connection"
        try:
            while (payload := recv_frame(self._sock, self._max_frame)) is not None:
                self._router.deliver(payload)
        except (OSError, FramingError) as exc:
            reason = f"lost the connection to the kernel: {exc}"
        finally:
            self._router.close(reason)

    def _start(self, request: Request) -> tuple[int, Inbox]:
        request_id, inbox = self._router.open()
        try:
            with self._send_lock:
                self._sock.sendall(frame(encode(msgspec.structs.replace(request, id=request_id))))
        except OSError as exc:
            self._router.drop(request_id)
            raise Interrupted(f"lost the connection to the kernel: {exc}") from exc
        return request_id, inbox

    def _receive(self, inbox: Inbox, timeout: float | None) -> Reply:
        try:
            return inbox.get(timeout=timeout)
        except queue.Empty:
            raise TimedOut(f"no answer from the kernel within {timeout} s") from None

    def _call(self, request: Request, timeout: float | None) -> Reply:
        request_id, inbox = self._start(request)
        try:
            reply = self._receive(inbox, timeout)
        finally:
            self._router.drop(request_id)
        return raise_if_error(reply)

    def _stream(self, request: StreamRequest) -> ProcessStream:
        request_id, inbox = self._start(request)
        try:
            pid = stream_pid(request, self._receive(inbox, self.timeout))
        except BaseException:
            self._router.drop(request_id)
            raise
        return ProcessStream(
            pid, lambda: self._receive(inbox, self.timeout), lambda: self._router.drop(request_id)
        )

    # -- syscalls ---------------------------------------------------------

    @overload
    def call(self, request: Request, /) -> Reply: ...

    @overload
    def call(self, request: str, /, **args: Any) -> dict[str, Any]: ...

    def call(self, request: Request | str, /, **args: Any) -> Reply | dict[str, Any]:
        """Send any request (its ``id`` is replaced) and return its one reply; raise its error.

        With a name, call that plugin syscall (``client.call("translate", text=...,
        target_lang="zh")``) and return its result as a dict.
        """
        if isinstance(request, str):
            return plugin_result(self._call(plugin_call(request, args), self.timeout))
        return self._call(request, self.timeout)

    def plugins(self) -> PluginsReply:
        """The kernel's plugins, the syscalls they add and the model presets."""
        return expect(self._call(Plugins(), self.timeout), PluginsReply)

    def spawn(
        self,
        prompt: str | None = None,
        *,
        model: str = "default",
        messages: Sequence[MessageLike] | None = None,
        token_ids: Sequence[int] | None = None,
        params: SamplingParams | None = None,
        nice: int = 0,
        chat: bool = False,
        **sampling: Any,
    ) -> int:
        """Start a process and return its pid; ``sampling`` fields are set over ``params``."""
        request = spawn_request(
            prompt,
            model=model,
            messages=messages,
            token_ids=token_ids,
            params=params,
            nice=nice,
            chat=chat,
            stream=False,
            sampling=sampling,
        )
        return expect(self.call(request), Spawned).pid

    def run(
        self,
        prompt: str | None = None,
        *,
        model: str = "default",
        messages: Sequence[MessageLike] | None = None,
        token_ids: Sequence[int] | None = None,
        params: SamplingParams | None = None,
        nice: int = 0,
        chat: bool = False,
        **sampling: Any,
    ) -> ProcessStream:
        """Start a process as ``spawn`` does and stream its events from its first token."""
        request = spawn_request(
            prompt,
            model=model,
            messages=messages,
            token_ids=token_ids,
            params=params,
            nice=nice,
            chat=chat,
            stream=True,
            sampling=sampling,
        )
        return self._stream(request)

    def stream(self, pid: int, from_start: bool = True) -> ProcessStream:
        """Follow a running process: from its first token, or only what comes next."""
        return self._stream(Stream(pid=pid, from_start=from_start))

    def write(self, pid: int, content: str) -> None:
        """Send the next user turn to a waiting chat process."""
        expect(self.call(Write(pid=pid, content=content)), Ok)

    def write_stream(self, pid: int, content: str) -> ProcessStream:
        """Send the next user turn to a waiting chat process and stream its reply."""
        return self._stream(Write(pid=pid, content=content, stream=True))

    def wait(self, pid: int, timeout: float | None = None) -> Waited:
        """Block until ``pid`` exits (at most ``timeout`` s, then ETIMEDOUT); reap it."""
        reply = self._call(Wait(pid=pid, timeout=timeout), wait_timeout(self.timeout, timeout))
        return expect(reply, Waited)

    def generate(
        self,
        prompt: str | None = None,
        *,
        model: str = "default",
        messages: Sequence[MessageLike] | None = None,
        params: SamplingParams | None = None,
        **sampling: Any,
    ) -> str:
        """Spawn a process, wait for it and return its text."""
        pid = self.spawn(prompt, model=model, messages=messages, params=params, **sampling)
        return waited_text(self.wait(pid))

    def kill(self, pid: int, signal: Signal = "TERM") -> None:
        """Send ``signal`` to a process."""
        expect(self.call(Kill(pid=pid, signal=signal)), Ok)

    def ps(self, all: bool = False) -> list[ProcInfo]:
        """The caller's processes, or everyone's with ``all``."""
        return expect(self.call(Ps(all=all)), PsReply).procs

    def proc(self, pid: int) -> ProcInfo:
        """Everything the kernel knows about one process."""
        return expect(self.call(Proc(pid=pid)), ProcReply).proc

    def renice(self, pid: int, nice: int) -> None:
        """Set a process's nice (-20..19); below 0 needs root."""
        expect(self.call(Renice(pid=pid, nice=nice)), Ok)

    def sched(self, policy: str | None = None) -> SchedReply:
        """The scheduling policy and per-uid service; with ``policy``, switch to it."""
        return expect(self.call(Sched(policy=policy)), SchedReply)

    def page_map(self, pid: int) -> list[PageEntry]:
        """Where each page of a process lives: tier, frame, tokens, sharing."""
        return expect(self.call(Proc(pid=pid, pages=True)), ProcReply).pages

    def fork(
        self,
        pid: int,
        n: int = 1,
        *,
        params: SamplingParams | None = None,
        seeds: list[int] | None = None,
    ) -> list[int]:
        """Fork ``pid`` into ``n`` children sharing its pages; their pids."""
        request = Fork(pid=pid, n=n, params=params, seeds=seeds)
        return expect(self.call(request), Forked).pids

    def meminfo(self) -> MeminfoReply:
        """Host and device memory, and each model's KV pool."""
        return expect(self.call(Meminfo()), MeminfoReply)

    def sysinfo(self) -> SysinfoReply:
        """The kernel's version, driver, device, uptime and policy."""
        return expect(self.call(Sysinfo()), SysinfoReply)

    def models(self) -> list[ModelInfo]:
        """The loaded models and the presets."""
        return expect(self.call(Models()), ModelsReply).models

    def load(self, model: str, keep_alive: float | None = None) -> ModelInfo:
        """Load ``model`` and keep it resident for ``keep_alive`` s of idleness."""
        return expect(self.call(Load(model=model, keep_alive=keep_alive)), Loaded).model

    def unload(self, model: str) -> None:
        """Unload a model no live process uses."""
        expect(self.call(Unload(model=model)), Ok)

    def shutdown(self, hibernate: bool = False) -> None:
        """Stop the kernel (``hibernate``: running processes too are saved to disk and
        resume in the next kernel); a connection that closes before the reply counts as done."""
        try:
            expect(self.call(Shutdown(hibernate=hibernate)), Ok)
        except Interrupted:
            if not self._router.is_closed:
                raise

    # -- lifetime ---------------------------------------------------------

    def close(self) -> None:
        """Close the connection; calls still in flight raise :class:`Interrupted`."""
        self._router.close("the client was closed")
        with contextlib.suppress(OSError):  # already disconnected
            self._sock.shutdown(socket.SHUT_RDWR)
        if self._reader is not threading.current_thread():
            self._reader.join(timeout=1.0)
        self._sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
