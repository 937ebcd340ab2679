"""The floor: a bare uvloop echo server with the kernel's framing."""

from __future__ import annotations

import asyncio
import contextlib
import os

import msgspec

from llmos.syscalls.framing import DEFAULT_MAX_FRAME, frame, read_frame
from llmos.syscalls.protocol import PROTOCOL_VERSION, decode_request, encode
from llmos.syscalls.replies import SysinfoReply


def canned_sysinfo() -> SysinfoReply:
    """A ``sysinfo`` reply shaped like the kernel's, built once."""
    return SysinfoReply(
        version="0.1.0",
        protocol=PROTOCOL_VERSION,
        driver="torch",
        device="cpu",
        uptime=1.0,
        policy="fcfs",
        kernel_pid=os.getpid(),
        kernel_uid=os.getuid(),
        models=[],
    )


async def serve_echo(path: str) -> None:
    """Answer every request (hello too) with the canned reply carrying its id."""
    reply = canned_sysinfo()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while (payload := await read_frame(reader, DEFAULT_MAX_FRAME)) is not None:
                request = decode_request(payload)
                writer.write(frame(encode(msgspec.structs.replace(reply, id=request.id))))
        writer.close()

    server = await asyncio.start_unix_server(on_connect, path)
    await server.serve_forever()


def run_echo(path: str) -> None:
    """The echo server process."""
    import uvloop

    uvloop.run(serve_echo(path))
