"""KernelCore: the process table, the resident models and their engines.

Everything here runs on the engine thread (see :mod:`llmos.kernel.engine_thread`);
nothing else touches a PCB, a page or a tensor. Each method is one syscall's
kernel-side work; what the event loop must hear (stream events, reaped pids,
model changes) collects in ``events`` and is published in order.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import msgspec
import psutil

from llmos.drivers.loaders.datadir import resolve_data_dir
from llmos.kernel.engine import Engine, StepOutput
from llmos.kernel.hibernate import ImageFile, failed_process, hibernate, image_path, restore
from llmos.kernel.models import ModelTable
from llmos.kernel.notices import ModelsChanged, Reaped, ServiceChanged
from llmos.kernel.policies import POLICIES, make_policy
from llmos.kernel.process import ExitStatus, Process, ProcessState
from llmos.kernel.procinfo import proc_info
from llmos.kernel.prompt import Prompt
from llmos.kernel.vmstat import page_map, pool_info
from llmos.syscalls.errors import InvalidArgument, LlmosError, NotFound, PermissionDenied
from llmos.syscalls.events import ExitEvent, TokenEvent, WaitingEvent
from llmos.syscalls.replies import (
    MeminfoReply,
    ModelInfo,
    ProcInfo,
    ProcReply,
    SchedReply,
    UidService,
    Waited,
)
from llmos.syscalls.requests import Fork, Spawn
from llmos.syscalls.sampling import SamplingParams

log = logging.getLogger("llmos.kernel")

NICE_MIN, NICE_MAX = -20, 19
ROOT = 0


class KernelCore:
    """Process table + models; one method per syscall, run on the engine thread."""

    def __init__(
        self, zombie_ttl: float = 600.0, data_dir: Path | None = None, policy: str = "fcfs"
    ) -> None:
        self.zombie_ttl = zombie_ttl
        self.policy = policy
        self.data_dir = resolve_data_dir(data_dir)
        self.models = ModelTable()
        self.table: dict[int, Process] = {}
        self.events: list[Any] = []

    # -- processes -------------------------------------------------------

    def spawn(self, uid: int, pid: int, request: Spawn, model_name: str) -> None:
        """Create process ``pid`` for ``uid`` from a Spawn request, on ``model_name``."""
        check_nice(uid, request.nice)
        model = self.models.get(model_name)
        live = [p for p in self.table.values() if p.is_live]
        quotas = model.engine.scheduler.quotas
        quotas.check_spawn(uid, live, 1, model.engine.memory.page_size)
        process = model.engine.add(
            prompt_of(request),
            request.params,
            pid=pid,
            chat=request.chat,
            uid=uid,
            nice=request.nice,
            model=model.name,
        )
        try:  # the page quota can only be checked once the prompt is tokenized
            quotas.check_spawn(uid, live, process.num_tokens + 1, model.engine.memory.page_size)
        except LlmosError:
            model.engine.kill(pid)
            model.engine.processes.pop(pid)
            raise
        self.table[pid] = process
        model.touch()

    def renice(self, uid: int, pid: int, nice: int) -> None:
        """Set a process's nice; only its owner or root, and below 0 only root."""
        process = self.owned(uid, pid)
        check_nice(uid, nice)
        self.engine_of(process).renice(pid, nice)

    def set_policy(self, name: str) -> None:
        """Switch every engine to policy ``name`` (validated first)."""
        make_policy(name)
        self.policy = name
        for model in self.models.models.values():
            model.engine.set_policy(name)

    def service(self) -> list[UidService]:
        """Per-uid service over every engine, by uid."""
        totals: dict[int, UidService] = {}
        for model in self.models.models.values():
            for uid, row in model.engine.service.items():
                total = totals.setdefault(uid, UidService(uid=uid))
                total.num_prefill_tokens += row.num_prefill_tokens
                total.num_decode_tokens += row.num_decode_tokens
                total.device_seconds += row.device_seconds
        return [totals[uid] for uid in sorted(totals)]

    def sched(self) -> SchedReply:
        return SchedReply(policy=self.policy, policies=sorted(POLICIES), service=self.service())

    def write(self, uid: int, pid: int, content: str) -> None:
        """Next user turn of a waiting chat process."""
        process = self.owned(uid, pid)
        self.engine_of(process).write(pid, content)

    def kill(self, uid: int, pid: int, signal: str) -> None:
        """TERM/KILL end a process now; STOP suspends it (pages to swap); CONT resumes."""
        process = self.owned(uid, pid)
        if not process.is_live:
            return
        self.engine_of(process).signal(pid, signal)
        if not process.is_live:
            self.events.append(ExitEvent(pid=pid, status=ExitStatus.KILLED.value))
        if process.state is not ProcessState.STOPPED:  # its hibernation image is stale now
            image_path(self.data_dir, pid).unlink(missing_ok=True)

    def fork(self, uid: int, pid: int, child_pids: list[int], request: Fork) -> list[int]:
        """Children of ``pid`` sharing its pages; see :mod:`llmos.kernel.fork`."""
        parent = self.owned(uid, pid)
        params: list[SamplingParams | None] = [request.params] * len(child_pids)
        if request.seeds is not None:
            if len(request.seeds) != len(child_pids):
                raise InvalidArgument(f"{len(request.seeds)} seeds for {len(child_pids)} children")
            base = request.params or parent.params
            params = [msgspec.structs.replace(base, seed=seed) for seed in request.seeds]
        children = self.engine_of(parent).fork(pid, child_pids, params)
        for child in children:
            self.table[child.pid] = child
        return [child.pid for child in children]

    def collect(self, uid: int, pid: int) -> Waited | None:
        """The exit status of a zombie (reaping it), or None while it lives."""
        process = self.owned(uid, pid)
        if process.is_live:
            return None
        self.reap(process)
        return Waited(proc=proc_info(process), text=process.text, token_ids=process.generated_ids)

    def check_access(self, uid: int, pid: int) -> None:
        """Raise unless ``uid`` may read and signal ``pid``."""
        self.owned(uid, pid)

    def ps(self, uid: int, everyone: bool) -> list[ProcInfo]:
        rows = [p for p in self.table.values() if everyone or p.uid == uid]
        return [proc_info(p) for p in sorted(rows, key=lambda p: p.pid)]

    def proc(self, pid: int, with_pages: bool = False) -> ProcReply:
        process = self.get(pid)
        pages = page_map(self.engine_of(process).memory, process) if with_pages else []
        return ProcReply(proc=proc_info(process), pages=pages)

    def get(self, pid: int) -> Process:
        process = self.table.get(pid)
        if process is None:
            raise NotFound(f"no such process: {pid}")
        return process

    def owned(self, uid: int, pid: int) -> Process:
        """The process, if ``uid`` owns it or is root."""
        process = self.get(pid)
        if uid not in (ROOT, process.uid):
            raise PermissionDenied(f"process {pid} belongs to uid {process.uid}, not {uid}")
        return process

    def engine_of(self, process: Process) -> Engine:
        return self.models.get(process.model).engine

    def reap(self, process: Process) -> None:
        del self.table[process.pid]
        if process.model in self.models:
            self.engine_of(process).processes.pop(process.pid, None)
        image_path(self.data_dir, process.pid).unlink(missing_ok=True)  # a failed restore's
        self.events.append(Reaped(process.pid))

    # -- the engine loop -------------------------------------------------

    @property
    def has_work(self) -> bool:
        return any(m.engine.has_work for m in self.models.models.values())

    def step(self) -> None:
        """One step of every engine with work; a failing step fails its processes only."""
        for model in list(self.models.models.values()):
            if not model.engine.has_work:
                continue
            try:
                outputs = model.engine.step()
            except Exception as exc:
                log.exception("step of %s failed", model.name)
                self.fail(model.engine, f"engine step failed: {exc!r}")
                continue
            self.events.extend(event for out in outputs for event in step_events(out))

    def with_owner(self, event: Any) -> Any:
        """An exit event with its process's uid and model."""
        if not isinstance(event, ExitEvent) or event.pid not in self.table:
            return event
        process = self.table[event.pid]
        return msgspec.structs.replace(event, uid=process.uid, model=process.model)

    def fail(self, engine: Engine, error: str) -> None:
        for process in engine.fail_running(error):
            self.events.append(ExitEvent(pid=process.pid, status="error", error=error))

    def housekeeping(self, now_wall: float, now: float) -> None:
        """Reap zombies nobody waited for; unload models idle past their keep-alive."""
        for process in list(self.table.values()):
            ended = process.ended_at
            if ended is not None and now_wall - ended > self.zombie_ttl:
                self.reap(process)
        for name in self.models.expired(now):
            log.info("unloading %s: idle past its keep-alive", name)
            self.unload(name)
        self.events.append(ServiceChanged(tuple(self.service())))

    def hibernate(self, everyone: bool) -> int:
        """Write stopped processes (all live ones with ``everyone``) to disk; they leave
        this kernel with status ``hibernated`` and return with the next one."""
        count = 0
        for model in self.models.models.values():
            engine = model.engine
            for process in [p for p in engine.processes.values() if p.is_live]:
                if not (everyone or process.state is ProcessState.STOPPED):
                    continue
                try:
                    hibernate(engine, process, self.data_dir)
                except Exception:
                    log.exception("could not hibernate process %d", process.pid)
                    continue
                engine.kill(process.pid)
                self.events.append(ExitEvent(pid=process.pid, status="hibernated"))
                count += 1
        return count

    def restore(self, file: ImageFile) -> int:
        """Bring back one hibernated process (same pid, same owner)."""
        engine = self.models.get(file.image.model).engine
        process = restore(engine, file)
        self.table[process.pid] = process
        if process.state is not ProcessState.STOPPED:
            image_path(self.data_dir, process.pid).unlink(missing_ok=True)
        return process.pid

    def restore_failed(self, pid: int, uid: int, model: str, error: str) -> None:
        """Record a process that could not be restored as a zombie with the reason."""
        engine = self.models.get(model).engine if model in self.models else None
        process = failed_process(pid, uid, model, error)
        if engine is not None:
            engine.processes[pid] = process
        self.table[pid] = process

    def shutdown(self) -> None:
        """End every live process with status ``shutdown``."""
        for model in self.models.models.values():
            for process in model.engine.end_all(ExitStatus.SHUTDOWN):
                self.events.append(ExitEvent(pid=process.pid, status="shutdown"))

    def take_events(self) -> list[Any]:
        events, self.events = self.events, []
        return [self.with_owner(event) for event in events]

    # -- models and memory -----------------------------------------------

    def model_info(self, name: str) -> ModelInfo | None:
        if name not in self.models:
            return None
        return self.models.get(name).info(time.monotonic())

    def install(self, name: str, engine: Engine, keep_alive: float | None) -> ModelInfo:
        if name not in self.models:
            engine.set_policy(self.policy)  # a model loaded later follows `sched` changes
        model = self.models.install(name, engine, keep_alive)
        self.events.append(ModelsChanged(tuple(self.models.names)))
        return model.info(time.monotonic())

    def unload(self, name: str) -> None:
        self.models.unload(name)
        self.events.append(ModelsChanged(tuple(self.models.names)))

    def list_models(self) -> list[ModelInfo]:
        now = time.monotonic()
        return [self.models.get(name).info(now) for name in self.models.names]

    def meminfo(self) -> MeminfoReply:
        host = psutil.virtual_memory()
        device, total, used = "cpu", int(host.total), int(host.total - host.available)
        pools = []
        for model in self.models.models.values():
            device, total, used = model.engine.driver.memory_stats()
            engine = model.engine
            page_bytes = engine.driver.page_bytes
            live = [p for p in engine.processes.values() if p.is_live]
            pools.append(pool_info(model.name, engine.memory, page_bytes, live))
        return MeminfoReply(
            host_total=int(host.total),
            host_available=int(host.available),
            kernel_rss=int(psutil.Process(os.getpid()).memory_info().rss),
            device=device,
            device_total=total,
            device_used=used,
            pools=pools,
        )


def step_events(out: StepOutput) -> list[Any]:
    """The stream events of one process's step (an exit's uid and model are filled in
    by :meth:`KernelCore.take_events`)."""
    events: list[Any] = [TokenEvent(pid=out.pid, text=out.text, token_ids=[out.token_id])]
    if out.turn_end is not None:
        events.append(WaitingEvent(pid=out.pid, finish=out.turn_end.value))
    if out.exit_status is not None:
        events.append(ExitEvent(pid=out.pid, status=out.exit_status.value))
    return events


def check_nice(uid: int, nice: int) -> None:
    if not NICE_MIN <= nice <= NICE_MAX:
        raise InvalidArgument(f"nice must be in [{NICE_MIN}, {NICE_MAX}], got {nice}")
    if nice < 0 and uid != ROOT:
        raise PermissionDenied("only root may set a negative nice")


def prompt_of(request: Spawn) -> Prompt:
    """The one prompt a Spawn carries: text, chat messages or token ids."""
    given = [x for x in (request.prompt, request.messages, request.token_ids) if x is not None]
    if len(given) != 1:
        raise InvalidArgument("give exactly one of prompt, messages or token_ids")
    if request.messages is not None:
        return [{"role": m.role, "content": m.content} for m in request.messages]
    if request.token_ids is not None:
        return request.token_ids
    assert request.prompt is not None
    return request.prompt
