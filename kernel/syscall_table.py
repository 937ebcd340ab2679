"""The syscall table: each request, decoded, goes to the handler that serves it.

Handlers run on the event loop. Work on processes, pages or models is sent
to the engine thread; a streaming call returns its head reply and a
subscriber, which the connection pumps.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from llmos import __version__
from llmos.kernel.channels import ChannelTable, Subscriber
from llmos.kernel.core import ROOT, KernelCore
from llmos.kernel.engine_thread import EngineThread
from llmos.kernel.fork import check_num_children
from llmos.kernel.loader import ModelLoader
from llmos.kernel.plugin_host import PluginHost
from llmos.syscalls.errors import (
    NotImplementedSyscall,
    PermissionDenied,
    ProtocolError,
    TimedOut,
)
from llmos.syscalls.protocol import PROTOCOL_VERSION
from llmos.syscalls.replies import (
    Forked,
    HelloReply,
    Loaded,
    MeminfoReply,
    ModelInfo,
    ModelsReply,
    Ok,
    ProcReply,
    PsReply,
    Reply,
    SchedReply,
    Spawned,
    SysinfoReply,
    Waited,
)
from llmos.syscalls.requests import (
    Call,
    Fork,
    Hello,
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
    Spawn,
    Stream,
    Sysinfo,
    Unload,
    Wait,
    Write,
)


@dataclass(frozen=True)
class Streaming:
    """A streaming call's answer: the head reply, then the subscriber's events."""

    head: Reply
    pid: int
    subscriber: Subscriber


Result = Reply | Streaming


class SyscallTable:
    """Serves every syscall for the kernel's connections."""

    def __init__(
        self,
        engine_thread: EngineThread,
        channels: ChannelTable,
        loader: ModelLoader,
        *,
        policy: str,
        plugins: PluginHost | None = None,
        on_shutdown: Callable[[bool], None],
    ) -> None:
        self.engine = engine_thread
        self.core: KernelCore = engine_thread.core
        self.channels = channels
        self.loader = loader
        self.on_shutdown = on_shutdown
        self.policy = policy  # the loop's copy, so sysinfo never waits for the engine
        self.plugins = plugins or PluginHost.load("none")
        self.started_at = time.monotonic()
        self._pids = itertools.count(1)

    def skip_pids(self, used: list[int]) -> None:
        """Start numbering after pids already taken (restored processes keep theirs)."""
        if used:
            self._pids = itertools.count(max(used) + 1)

    def hello(self, uid: int, request: Hello) -> HelloReply:
        """Check the protocol version."""
        if request.version != PROTOCOL_VERSION:
            raise ProtocolError(
                f"client speaks protocol {request.version}, this kernel speaks "
                f"{PROTOCOL_VERSION}: use a client from llmos {__version__}"
            )
        return HelloReply(version=PROTOCOL_VERSION, kernel_version=__version__, uid=uid)

    def sysinfo(self) -> SysinfoReply:
        """Answered on the loop with no trip to the engine thread: the null syscall."""
        return SysinfoReply(
            version=__version__,
            protocol=PROTOCOL_VERSION,
            driver=self.loader.config.driver,
            device=self.loader.config.device,
            uptime=time.monotonic() - self.started_at,
            policy=self.policy,
            kernel_pid=os.getpid(),
            kernel_uid=os.getuid(),
            models=list(self.channels.model_names),
            service=list(self.channels.service),
        )

    async def dispatch(self, uid: int, request: Request) -> Result:
        """Serve one request for caller ``uid``."""
        match request:
            case Spawn():
                return await self.spawn(uid, request)
            case Stream(pid=pid, from_start=from_start):
                await self.engine.call(self.core.check_access, uid, pid)
                return Streaming(Ok(), pid, self.channels.subscribe(pid, from_start))
            case Write():
                return await self.write(uid, request)
            case Wait(pid=pid, timeout=timeout):
                return await self.wait(uid, pid, timeout)
            case Kill(pid=pid, signal=signal):
                await self.engine.call(self.core.kill, uid, pid, signal)
                return Ok()
            case Fork(pid=pid, n=n):
                check_num_children(n)  # before taking pids: n = 10**9 must not loop
                child_pids = [next(self._pids) for _ in range(n)]
                pids = await self.engine.call(self.core.fork, uid, pid, child_pids, request)
                return Forked(pids=pids)
            case Renice(pid=pid, nice=nice):
                await self.engine.call(self.core.renice, uid, pid, nice)
                return Ok()
            case Sched(policy=policy):
                return await self.sched(uid, policy)
            case Ps(all=everyone):
                return PsReply(procs=await self.engine.call(self.core.ps, uid, everyone))
            case Proc(pid=pid, pages=pages):
                reply: ProcReply = await self.engine.call(self.core.proc, pid, pages)
                return reply
            case Meminfo():
                memory: MeminfoReply = await self.engine.call(self.core.meminfo)
                return memory
            case Sysinfo():
                return self.sysinfo()
            case Models():
                return ModelsReply(models=await self.engine.call(self.core.list_models))
            case Load(model=model, keep_alive=keep_alive):
                return Loaded(model=await self.load(model, keep_alive))
            case Call():
                return await self.plugins.call(self, uid, request)
            case Plugins():
                return self.plugins.infos()
            case Unload(model=model):
                await self.engine.call(self.core.unload, self.loader.resolve(model))
                return Ok()
            case Shutdown(hibernate=hibernate):
                return self.shutdown(uid, hibernate)
        raise NotImplementedSyscall(f"no handler for {type(request).__name__}")

    async def load(self, name: str, keep_alive: float | None) -> ModelInfo:
        """Make a model (or a preset's model) resident; say which preset it serves."""
        info = await self.loader.ensure(name, keep_alive)
        preset = self.plugins.preset(name)
        if preset is None:
            return info
        return msgspec.structs.replace(info, preset=preset.name, task=preset.task)

    async def spawn(self, uid: int, request: Spawn) -> Result:
        """Load the model if needed, create the process, maybe stream it."""
        model = await self.loader.ensure(request.model)
        pid = next(self._pids)
        subscriber = self.channels.subscribe(pid, True) if request.stream else None
        try:
            await self.engine.call(self.core.spawn, uid, pid, request, model.name)
        except BaseException:
            self.channels.discard(pid)
            raise
        if subscriber is None:
            return Spawned(pid=pid)
        return Streaming(Spawned(pid=pid), pid, subscriber)

    async def write(self, uid: int, request: Write) -> Result:
        """Wake a waiting chat process with its next turn."""
        pid = request.pid
        subscriber = self.channels.subscribe(pid, False) if request.stream else None
        try:
            await self.engine.call(self.core.write, uid, pid, request.content)
        except BaseException:
            if subscriber is not None:
                self.channels.unsubscribe(pid, subscriber)
            raise
        return Ok() if subscriber is None else Streaming(Ok(), pid, subscriber)

    async def wait(self, uid: int, pid: int, timeout: float | None) -> Waited:
        """Sleep until ``pid`` exits, then reap it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            waited = await self.engine.call(self.core.collect, uid, pid)
            if waited is not None:
                return waited
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                await asyncio.wait_for(self.channels.channel(pid).exited.wait(), left)
            except TimeoutError:
                raise TimedOut(f"process {pid} still runs after {timeout} s") from None

    async def sched(self, uid: int, policy: str | None) -> SchedReply:
        """Show the policy; switching it takes the kernel's owner or root."""
        if policy is not None:
            if uid not in (ROOT, os.getuid()):
                raise PermissionDenied("only the kernel's owner or root may change the policy")
            await self.engine.call(self.core.set_policy, policy)
        reply: SchedReply = await self.engine.call(self.core.sched)
        self.policy = reply.policy
        return reply

    def shutdown(self, uid: int, hibernate: bool) -> Ok:
        """Only the kernel's owner or root may stop it."""
        if uid not in (ROOT, os.getuid()):
            raise PermissionDenied("only the kernel's owner or root may shut it down")
        self.on_shutdown(hibernate)
        return Ok()
