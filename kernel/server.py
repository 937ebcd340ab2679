"""KernelServer: the daemon's lifecycle — startup, serve, shutdown.

Startup: 1. take the pidfile (one kernel per socket), 2. remove swap files
a crashed kernel left (no live kernel holds their lock), 3. start the engine
thread, 4. load the boot models, 5. bind the socket (mode 0600, or 0660 for a
configured group) and accept. Shutdown (SIGTERM, SIGINT or the ``shutdown``
syscall): 1. stop accepting, 2. end every live process with status
``shutdown``, 3. let streams deliver that (bounded), 4. close connections,
5. stop the engine thread, 6. remove the socket and the pidfile.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import signal
import socket
from pathlib import Path
from typing import Any

from llmos.drivers.swap_files import remove_stale_swap_files
from llmos.kernel.channels import ChannelTable
from llmos.kernel.connection import Connection
from llmos.kernel.core import KernelCore
from llmos.kernel.engine_thread import EngineThread
from llmos.kernel.loader import ModelLoader
from llmos.kernel.peercred import Credentials, peer_uid
from llmos.kernel.pidfile import PidFile
from llmos.kernel.plugin_host import PluginHost
from llmos.kernel.resume import restore_hibernated
from llmos.kernel.settings import KernelSettings
from llmos.kernel.syscall_table import SyscallTable
from llmos.syscalls.errors import InvalidArgument
from llmos.syscalls.paths import pidfile_path

log = logging.getLogger("llmos.kernel")

MAX_SUN_PATH = 107
PINNED = -1.0  # keep-alive of boot models: resident for the kernel's lifetime


class KernelServer:
    """The resident kernel: owns the socket, the engine thread and the connections."""

    def __init__(self, settings: KernelSettings, credentials: Credentials = peer_uid) -> None:
        self.settings = settings
        self.credentials = credentials
        self.pidfile = PidFile(pidfile_path(settings.socket), settings.socket)
        self.connections: set[Connection] = set()
        self.should_exit = asyncio.Event()
        self.hibernate_all = settings.hibernate
        self.server: asyncio.AbstractServer | None = None
        self.engine_thread: EngineThread | None = None

    async def serve(self) -> None:
        """Run until asked to stop; always cleans up what startup made."""
        check_socket_path(self.settings.socket)
        self.settings.socket.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.pidfile.acquire()
        try:
            await self.startup()
            self.install_signal_handlers()
            log.info("kernel %d listening on %s", os.getpid(), self.settings.socket)
            await self.should_exit.wait()
            await self.shutdown()
        finally:
            await self.stop_engine()
            with contextlib.suppress(FileNotFoundError):
                self.settings.socket.unlink()
            self.pidfile.release()
            log.info("kernel stopped")

    def request_shutdown(self, hibernate: bool | None = None) -> None:
        """Ask the kernel to stop (signal handlers and the syscall only set this flag)."""
        if hibernate is not None:
            self.hibernate_all = hibernate
        self.should_exit.set()

    async def startup(self) -> None:
        loop = asyncio.get_running_loop()
        self.plugins = PluginHost.load(self.settings.plugins)
        channels = ChannelTable(self.settings.stream_buffer)
        core = KernelCore(
            zombie_ttl=self.settings.zombie_ttl,
            data_dir=self.settings.data_dir,
            policy=self.settings.sched,
        )
        remove_stale_swap_files(core.data_dir)  # hibernation images stay: restored below

        def publish(batch: list[Any]) -> None:
            loop.call_soon_threadsafe(channels.publish, batch)

        self.engine_thread = EngineThread(core, publish)
        self.engine_thread.start()
        loader = ModelLoader(
            self.engine_thread,
            self.settings.engine_config(),
            self.settings.data_dir,
            self.settings.keep_alive,
            default_model=self.settings.models[0] if self.settings.models else None,
            presets=self.plugins.registry.presets,
        )
        for name in self.settings.models:
            await loader.ensure(name, keep_alive=PINNED)
        restored = await restore_hibernated(self.engine_thread, loader, core.data_dir)
        self.syscalls = SyscallTable(
            self.engine_thread,
            channels,
            loader,
            policy=self.settings.sched,
            plugins=self.plugins,
            on_shutdown=self.request_shutdown,
        )
        channels.on_exit = self.plugins.process_exit
        self.syscalls.skip_pids(restored)
        sock = bind_socket(self.settings.socket, self.settings.socket_group)
        self.server = await asyncio.start_unix_server(self.on_connect, sock=sock)

    async def on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        uid = self.credentials(sock)
        connection = Connection(self.syscalls, reader, writer, uid, self.settings.max_frame)
        self.connections.add(connection)
        try:
            await connection.serve()
        finally:
            self.connections.discard(connection)

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.add_signal_handler(signum, self.should_exit.set)

    async def shutdown(self) -> None:
        log.info("shutting down")
        timeout = self.settings.shutdown_timeout
        if self.server is not None:  # 1. stop accepting
            self.server.close()
        assert self.engine_thread is not None
        core = self.engine_thread.core
        count = await self.engine_thread.call(core.hibernate, self.hibernate_all)  # 2.
        if count:
            log.info("hibernated %d processes to %s", count, core.data_dir)
        await self.engine_thread.call(core.shutdown)  # 2. end the other processes
        await self.drain_streams(timeout / 2)  # 3. let streams say so
        for connection in list(self.connections):  # 4. hang up
            await connection.close()

    async def drain_streams(self, timeout: float) -> None:
        tasks: list[asyncio.Task[Any]] = [t for c in self.connections for t in c.tasks]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def stop_engine(self) -> None:
        if hasattr(self, "plugins"):
            self.plugins.threads.shutdown()
        if self.engine_thread is not None:  # 5. the engine thread
            timeout = self.settings.shutdown_timeout / 2
            if not await asyncio.to_thread(self.engine_thread.stop, timeout):
                log.warning("engine thread still busy after %.1f s; leaving it", timeout)


def check_socket_path(path: Path) -> None:
    if len(os.fsencode(path)) > MAX_SUN_PATH:
        raise InvalidArgument(f"socket path is longer than {MAX_SUN_PATH} bytes: {path}")


def bind_socket(path: Path, group: str | None) -> socket.socket:
    """A listening Unix socket at ``path``, mode 0600 (0660 and chgrp with ``group``)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old_umask)
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            sock.close()
            path.unlink()
            raise InvalidArgument(f"no such group for the socket: {group!r}") from None
        os.chown(path, -1, gid)
        os.chmod(path, 0o660)
    sock.listen(512)
    sock.setblocking(False)
    return sock
