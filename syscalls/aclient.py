"""The asyncio client: the blocking :class:`~llmos.syscalls.client.Client`'s twin.

Every syscall is a coroutine and streams are async iterators. Connect with
``async with`` (closed on exit) or with :meth:`AsyncClient.connect` (then
``await client.close()``)::

    async with AsyncClient() as kernel:
        stream = await kernel.run("Once upon a time", max_tokens=32)
        async for chunk in stream.text_chunks():
            print(chunk, end="")
"""

from __future__ import annotations

import asyncio
import contextlib
import os
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
from llmos.syscalls.errors import Interrupted, KernelUnavailable, TimedOut
from llmos.syscalls.framing import DEFAULT_MAX_FRAME, FramingError, frame, read_frame
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
from llmos.syscalls.streams import AsyncProcessStream

Inbox = asyncio.Queue[Reply]


class AsyncClient:
    """An asyncio connection to the kernel; every syscall is a coroutine method.

    The constructor only records the settings; the connection opens in
    ``async with`` or :meth:`connect`. ``timeout`` and lost connections
    behave as in the blocking client.
    """

    uid: int
    kernel_version: str

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
        self._name = name
        self._router: Router[Inbox] = Router(asyncio.Queue)
        self._writer: asyncio.StreamWriter | None = None
        self._read_task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls,
        socket_path: str | os.PathLike[str] | None = None,
        *,
        timeout: float | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        name: str = "llmos-sdk",
    ) -> AsyncClient:
        """A connected client, hello done; ``await client.close()`` when finished."""
        client = cls(socket_path, timeout=timeout, max_frame=max_frame, name=name)
        await client._open()
        return client

    # -- plumbing ---------------------------------------------------------

    async def _open(self) -> None:
        try:
            reader, self._writer = await asyncio.open_unix_connection(os.fspath(self.socket_path))
        except OSError as exc:
            raise unavailable(self.socket_path, exc) from exc
        self._read_task = asyncio.create_task(self._read_loop(reader), name="llmos-client")
        try:
            hello = expect(await self.call(hello_request(self._name)), HelloReply)
        except BaseException:
            await self.close()
            raise
        self.uid = hello.uid
        self.kernel_version = hello.kernel_version

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        reason = "the kernel closed the connection"
        try:
            while (payload := await read_frame(reader, self._max_frame)) is not None:
                self._router.deliver(payload)
        except (OSError, FramingError) as exc:
            reason = f"lost the connection to the kernel: {exc}"
        finally:
            self._router.close(reason)

    async def _start(self, request: Request) -> tuple[int, Inbox]:
        if self._writer is None:
            raise KernelUnavailable("not connected: use `async with` or AsyncClient.connect()")
        request_id, inbox = self._router.open()
        try:
            self._writer.write(frame(encode(msgspec.structs.replace(request, id=request_id))))
            await self._writer.drain()
        except OSError as exc:
            self._router.drop(request_id)
            raise Interrupted(f"lost the connection to the kernel: {exc}") from exc
        return request_id, inbox

    async def _receive(self, inbox: Inbox, timeout: float | None) -> Reply:
        try:
            async with asyncio.timeout(timeout):
                return await inbox.get()
        except TimeoutError:
            raise TimedOut(f"no answer from the kernel within {timeout} s") from None

    async def _call(self, request: Request, timeout: float | None) -> Reply:
        request_id, inbox = await self._start(request)
        try:
            reply = await self._receive(inbox, timeout)
        finally:
            self._router.drop(request_id)
        return raise_if_error(reply)

    async def _stream(self, request: StreamRequest) -> AsyncProcessStream:
        request_id, inbox = await self._start(request)
        try:
            pid = stream_pid(request, await self._receive(inbox, self.timeout))
        except BaseException:
            self._router.drop(request_id)
            raise
        return AsyncProcessStream(
            pid, lambda: self._receive(inbox, self.timeout), lambda: self._router.drop(request_id)
        )

    # -- syscalls ---------------------------------------------------------

    @overload
    async def call(self, request: Request, /) -> Reply: ...

    @overload
    async def call(self, request: str, /, **args: Any) -> dict[str, Any]: ...

    async def call(self, request: Request | str, /, **args: Any) -> Reply | dict[str, Any]:
        """Send any request (its ``id`` is replaced) and return its one reply; raise its error.

        With a name, call that plugin syscall (``client.call("translate", text=...,
        target_lang="zh")``) and return its result as a dict.
        """
        if isinstance(request, str):
            return plugin_result(await self._call(plugin_call(request, args), self.timeout))
        return await self._call(request, self.timeout)

    async def plugins(self) -> PluginsReply:
        """The kernel's plugins, the syscalls they add and the model presets."""
        return expect(await self._call(Plugins(), self.timeout), PluginsReply)

    async def spawn(
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
        return expect(await self.call(request), Spawned).pid

    async def run(
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
    ) -> AsyncProcessStream:
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
        return await self._stream(request)

    async def stream(self, pid: int, from_start: bool = True) -> AsyncProcessStream:
        """Follow a running process: from its first token, or only what comes next."""
        return await self._stream(Stream(pid=pid, from_start=from_start))

    async def write(self, pid: int, content: str) -> None:
        """Send the next user turn to a waiting chat process."""
        expect(await self.call(Write(pid=pid, content=content)), Ok)

    async def write_stream(self, pid: int, content: str) -> AsyncProcessStream:
        """Send the next user turn to a waiting chat process and stream its reply."""
        return await self._stream(Write(pid=pid, content=content, stream=True))

    async def wait(self, pid: int, timeout: float | None = None) -> Waited:
        """Block until ``pid`` exits (at most ``timeout`` s, then ETIMEDOUT); reap it."""
        reply = await self._call(
            Wait(pid=pid, timeout=timeout), wait_timeout(self.timeout, timeout)
        )
        return expect(reply, Waited)

    async def generate(
        self,
        prompt: str | None = None,
        *,
        model: str = "default",
        messages: Sequence[MessageLike] | None = None,
        params: SamplingParams | None = None,
        **sampling: Any,
    ) -> str:
        """Spawn a process, wait for it and return its text."""
        pid = await self.spawn(prompt, model=model, messages=messages, params=params, **sampling)
        return waited_text(await self.wait(pid))

    async def kill(self, pid: int, signal: Signal = "TERM") -> None:
        """Send ``signal`` to a process."""
        expect(await self.call(Kill(pid=pid, signal=signal)), Ok)

    async def ps(self, all: bool = False) -> list[ProcInfo]:
        """The caller's processes, or everyone's with ``all``."""
        return expect(await self.call(Ps(all=all)), PsReply).procs

    async def proc(self, pid: int) -> ProcInfo:
        """Everything the kernel knows about one process."""
        return expect(await self.call(Proc(pid=pid)), ProcReply).proc

    async def renice(self, pid: int, nice: int) -> None:
        """Set a process's nice (-20..19); below 0 needs root."""
        expect(await self.call(Renice(pid=pid, nice=nice)), Ok)

    async def sched(self, policy: str | None = None) -> SchedReply:
        """The scheduling policy and per-uid service; with ``policy``, switch to it."""
        return expect(await self.call(Sched(policy=policy)), SchedReply)

    async def page_map(self, pid: int) -> list[PageEntry]:
        """Where each page of a process lives: tier, frame, tokens, sharing."""
        return expect(await self.call(Proc(pid=pid, pages=True)), ProcReply).pages

    async def fork(
        self,
        pid: int,
        n: int = 1,
        *,
        params: SamplingParams | None = None,
        seeds: list[int] | None = None,
    ) -> list[int]:
        """Fork ``pid`` into ``n`` children sharing its pages; their pids."""
        request = Fork(pid=pid, n=n, params=params, seeds=seeds)
        return expect(await self.call(request), Forked).pids

    async def meminfo(self) -> MeminfoReply:
        """Host and device memory, and each model's KV pool."""
        return expect(await self.call(Meminfo()), MeminfoReply)

    async def sysinfo(self) -> SysinfoReply:
        """The kernel's version, driver, device, uptime and policy."""
        return expect(await self.call(Sysinfo()), SysinfoReply)

    async def models(self) -> list[ModelInfo]:
        """The loaded models and the presets."""
        return expect(await self.call(Models()), ModelsReply).models

    async def load(self, model: str, keep_alive: float | None = None) -> ModelInfo:
        """Load ``model`` and keep it resident for ``keep_alive`` s of idleness."""
        return expect(await self.call(Load(model=model, keep_alive=keep_alive)), Loaded).model

    async def unload(self, model: str) -> None:
        """Unload a model no live process uses."""
        expect(await self.call(Unload(model=model)), Ok)

    async def shutdown(self, hibernate: bool = False) -> None:
        """Stop the kernel (``hibernate``: running processes too are saved to disk and
        resume in the next kernel); a connection that closes before the reply counts as done."""
        try:
            expect(await self.call(Shutdown(hibernate=hibernate)), Ok)
        except Interrupted:
            if not self._router.is_closed:
                raise

    # -- lifetime ---------------------------------------------------------

    async def close(self) -> None:
        """Close the connection; calls still in flight raise :class:`Interrupted`."""
        self._router.close("the client was closed")
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):  # already disconnected
                await self._writer.wait_closed()
        if self._read_task is not None:
            self._read_task.cancel()
            await asyncio.wait([self._read_task])

    async def __aenter__(self) -> AsyncClient:
        if self._writer is None:
            await self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
