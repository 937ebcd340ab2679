"""One client connection: read frames, decode, dispatch, write replies.

Each request runs in its own task, so one connection can have many calls in
flight (streams included). A malformed message gets an error reply and the
connection lives on; a frame over the limit, or bytes that lose the framing,
close this connection and no other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec

from llmos.kernel.channels import LAGGED
from llmos.kernel.syscall_table import Streaming, SyscallTable
from llmos.syscalls.errors import Busy, Interrupted, LlmosError, ProtocolError
from llmos.syscalls.events import is_terminal
from llmos.syscalls.framing import FramingError, frame, read_frame
from llmos.syscalls.protocol import BadRequest, decode_request, encode, error_reply
from llmos.syscalls.replies import Error, Reply
from llmos.syscalls.requests import Hello, Request, Sysinfo

log = logging.getLogger("llmos.kernel")

HIGH_WATER = 1 << 20  # bytes queued for a client before a stream waits for it
MAX_IN_FLIGHT = 1024  # calls one connection may have pending; more get EBUSY


class Connection:
    """Serves one client until it hangs up or breaks the framing."""

    def __init__(
        self,
        syscalls: SyscallTable,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        uid: int,
        max_frame: int,
    ) -> None:
        self.syscalls = syscalls
        self.reader = reader
        self.writer = writer
        self.uid = uid
        self.max_frame = max_frame
        self.is_greeted = False
        self.tasks: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        """Read and answer requests until EOF."""
        try:
            while (payload := await read_frame(self.reader, self.max_frame)) is not None:
                self.on_payload(payload)
                if self.writer.transport.get_write_buffer_size() > HIGH_WATER:
                    await self.writer.drain()  # a client that does not read is not read
        except FramingError as exc:
            log.warning("uid %d: closing connection: %s", self.uid, exc)
            self.send(error_reply(0, ProtocolError(str(exc))))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            await self.close()

    def on_payload(self, payload: bytes) -> None:
        try:
            request = decode_request(payload)
        except BadRequest as bad:
            self.send(error_reply(bad.request_id, bad.error))
            return
        if isinstance(request, Hello):
            self.greet(request)
        elif not self.is_greeted:
            self.send(error_reply(request.id, ProtocolError("say hello first")))
        elif isinstance(request, Sysinfo):
            self.send(stamp(self.syscalls.sysinfo(), request.id))
        elif len(self.tasks) >= MAX_IN_FLIGHT:
            busy = Busy(f"{MAX_IN_FLIGHT} calls already in flight on this connection")
            self.send(error_reply(request.id, busy))
        else:
            task = asyncio.create_task(self.run(request))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def greet(self, request: Hello) -> None:
        try:
            reply = self.syscalls.hello(self.uid, request)
        except LlmosError as exc:
            self.send(error_reply(request.id, exc))
            return
        self.is_greeted = True
        self.send(stamp(reply, request.id))

    async def run(self, request: Request) -> None:
        """Serve one request in its own task."""
        try:
            result = await self.syscalls.dispatch(self.uid, request)
        except LlmosError as exc:
            self.send(error_reply(request.id, exc))
            return
        except Exception as exc:
            log.exception("syscall %s failed", type(request).__name__)
            self.send(Error(id=request.id, code="EIO", message=f"internal error: {exc!r}"))
            return
        if isinstance(result, Streaming):
            await self.pump(request.id, result)
        else:
            self.send(stamp(result, request.id))

    async def pump(self, request_id: int, streaming: Streaming) -> None:
        """Send a stream's head reply, then its events until a terminal one."""
        self.send(stamp(streaming.head, request_id))
        try:
            while True:
                event = await streaming.subscriber.get()
                if event is LAGGED:
                    lag = Interrupted("stream dropped: this client fell too far behind")
                    self.send(error_reply(request_id, lag))
                    return
                self.send(stamp(event, request_id))
                if is_terminal(event):
                    return
                if self.writer.transport.get_write_buffer_size() > HIGH_WATER:
                    await self.writer.drain()
        finally:
            self.syscalls.channels.unsubscribe(streaming.pid, streaming.subscriber)

    def send(self, message: msgspec.Struct) -> None:
        if not self.writer.is_closing():
            self.writer.write(frame(encode(message)))

    async def close(self) -> None:
        """Cancel this connection's calls (its processes keep running) and hang up."""
        for task in list(self.tasks):
            task.cancel()
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


def stamp(reply: Reply, request_id: int) -> Reply:
    """``reply`` carrying the id of the request it answers."""
    return msgspec.structs.replace(reply, id=request_id)
