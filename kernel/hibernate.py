"""Hibernation: processes written to disk with their pages, restored by the next kernel.

One file per process, ``<data dir>/hibernate/<pid>.kv``: an 8-byte length, a
msgpack :class:`Image` (the PCB, the sampling state, one CRC-32 per page),
then the pages' raw bytes. Files are written to a temporary name, synced and
renamed, so a crash leaves either the old file or the new one, never half
of one. Restoring reads the pages once, from the file straight into their
swap frames, checking each CRC-32 on the way; a page whose checksum fails
fails that process (status ``error``), not the kernel.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from dataclasses import dataclass
from io import FileIO
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from llmos.drivers.detokenizer import IncrementalDetokenizer
from llmos.kernel.memory import NOT_RESIDENT
from llmos.kernel.pages import pages_for
from llmos.kernel.process import ExitStatus, Process, ProcessState
from llmos.kernel.stopping import stop_token_ids
from llmos.syscalls.errors import LlmosError, OutOfMemory
from llmos.syscalls.sampling import SamplingParams
from llmos.syscalls.tiers import Tier

if TYPE_CHECKING:
    from llmos.kernel.engine import Engine

log = logging.getLogger("llmos.kernel")
LENGTH = struct.Struct(">Q")
FORMAT = 1


class CorruptImage(LlmosError):
    """A hibernation file is truncated, unreadable or fails a checksum."""

    code = "EIO"


class Image(msgspec.Struct, kw_only=True):
    """Everything needed to bring a process back, except its pages' bytes."""

    format: int = FORMAT
    pid: int
    ppid: int
    uid: int
    nice: int
    model: str
    state: str
    resume_state: str
    is_chat: bool
    messages: list[dict[str, str]]
    params: SamplingParams
    token_ids: list[int]
    num_prompt_tokens: int
    num_computed_tokens: int
    turn_start: int
    num_turns: int
    text: str
    num_streamed_chars: int
    num_sampled: int
    num_prefill_tokens: int
    created_at: float
    seed: int
    sampler_state: bytes
    detokenizer_state: tuple[list[int], int, int] | None = None
    page_size: int
    page_bytes: int
    checksums: list[int]


def image_dir(data_dir: Path) -> Path:
    return data_dir / "hibernate"


def image_path(data_dir: Path, pid: int) -> Path:
    return image_dir(data_dir) / f"{pid}.kv"


def hibernate(engine: Engine, process: Process, data_dir: Path) -> Path:
    """Write ``process`` and its computed pages to disk (atomically); return the file."""
    num_pages = pages_for(process.num_computed_tokens, engine.memory.page_size)
    locations = [location(process, index) for index in range(num_pages)]
    pages = engine.driver.export_pages(locations)
    image = image_of(engine, process, [zlib.crc32(page) for page in pages])
    header = msgspec.msgpack.encode(image)
    path = image_path(data_dir, process.pid)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    with open(temporary, "wb") as handle:
        handle.write(LENGTH.pack(len(header)) + header)
        for page in pages:
            handle.write(page)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return path


def location(process: Process, index: int) -> tuple[Tier, int]:
    frame = process.block_table[index]
    return (Tier.DEVICE, frame) if frame != NOT_RESIDENT else process.swapped[index]


def image_of(engine: Engine, process: Process, checksums: list[int]) -> Image:
    sampler = process.sampler_state
    return Image(
        pid=process.pid,
        ppid=process.ppid,
        uid=process.uid,
        nice=process.nice,
        model=process.model,
        state=process.state.value,
        resume_state=process.resume_state.value,
        is_chat=process.is_chat,
        messages=process.messages,
        params=process.params,
        token_ids=process.token_ids,
        num_prompt_tokens=process.num_prompt_tokens,
        num_computed_tokens=process.num_computed_tokens,
        turn_start=process.turn_start,
        num_turns=process.num_turns,
        text=process.text,
        num_streamed_chars=process.num_streamed_chars,
        num_sampled=process.num_sampled,
        num_prefill_tokens=process.num_prefill_tokens,
        created_at=process.created_at,
        seed=sampler.seed,
        sampler_state=sampler.get_state(),
        detokenizer_state=process.detokenizer.get_state(),
        page_size=engine.memory.page_size,
        page_bytes=engine.driver.page_bytes,
        checksums=checksums,
    )


@dataclass(frozen=True)
class ImageFile:
    """A hibernation file whose header has been read: its image, and where its pages start."""

    path: Path
    image: Image
    pages_at: int


def read_image(path: Path) -> ImageFile:
    """The header of a hibernation file (its pages are read by :func:`restore`);
    CorruptImage if it cannot be decoded or the file's size does not add up."""
    try:
        with open(path, "rb") as handle:
            (length,) = LENGTH.unpack(handle.read(LENGTH.size))
            image = msgspec.msgpack.decode(handle.read(length), type=Image)
            size = os.fstat(handle.fileno()).st_size
    except (OSError, struct.error, msgspec.MsgspecError) as exc:
        raise CorruptImage(f"{path}: unreadable hibernation file: {exc}") from exc
    pages_at = LENGTH.size + length
    expected = pages_at + len(image.checksums) * image.page_bytes
    if size != expected:
        raise CorruptImage(
            f"{path}: {size} bytes where its pages need {expected} (process {image.pid})"
        )
    return ImageFile(path, image, pages_at)


class PageReader:
    """Reads an image's pages, in order, into the buffers the driver hands it, checking
    each page's CRC-32 as it goes (the driver's ``fill`` callback)."""

    def __init__(self, file: ImageFile, handle: FileIO) -> None:
        self.file = file
        self.handle = handle
        self.num_read = 0

    def __call__(self, buffer: memoryview) -> None:
        size, checksums = self.file.image.page_bytes, self.file.image.checksums
        assert len(buffer) % size == 0, "buffers hold whole pages"
        got = 0
        while got < len(buffer):
            num = self.handle.readinto(buffer[got:])
            if not num:
                raise CorruptImage(f"{self.file.path}: truncated after {got} bytes of pages")
            got += num
        first, self.num_read = self.num_read, self.num_read + len(buffer) // size
        bad = [
            first + i
            for i in range(len(buffer) // size)
            if zlib.crc32(buffer[i * size : (i + 1) * size]) != checksums[first + i]
        ]
        if bad:
            pid = self.file.image.pid
            raise CorruptImage(f"{self.file.path}: pages {bad} fail their checksum (process {pid})")


def restore(engine: Engine, file: ImageFile) -> Process:
    """Bring a hibernated process back with its pages in swap (paged in when it runs)."""
    image = file.image
    if image.page_bytes != engine.driver.page_bytes or image.page_size != engine.memory.page_size:
        raise CorruptImage(
            f"process {image.pid} was hibernated with another page layout "
            f"({image.page_size} tokens, {image.page_bytes} bytes a page)"
        )
    process = process_of(engine, image)
    place_pages(engine, process, file)
    engine.adopt(process)
    return process


def process_of(engine: Engine, image: Image) -> Process:
    driver = engine.driver
    sampler = driver.new_sampler_state(msgspec.structs.replace(image.params, seed=image.seed))
    sampler.set_state(image.sampler_state)
    state = ProcessState(image.state)
    detokenizer = IncrementalDetokenizer(engine.tokenizer, context_ids=image.token_ids)
    if image.detokenizer_state is not None:
        detokenizer.set_state(image.detokenizer_state)
    return Process(
        pid=image.pid,
        params=image.params,
        token_ids=list(image.token_ids),
        num_prompt_tokens=image.num_prompt_tokens,
        sampler_state=sampler,
        detokenizer=detokenizer,
        stop_ids=stop_token_ids(image.params, engine.tokenizer.eos_token_ids),
        uid=image.uid,
        ppid=image.ppid,
        nice=image.nice,
        model=image.model,
        is_chat=image.is_chat,
        messages=image.messages,
        state=ProcessState.READY if state is ProcessState.RUNNING else state,
        resume_state=ProcessState(image.resume_state),
        num_computed_tokens=image.num_computed_tokens,
        text=image.text,
        num_streamed_chars=image.num_streamed_chars,
        num_sampled=image.num_sampled,
        num_prefill_tokens=image.num_prefill_tokens,
        num_turns=image.num_turns,
        turn_start=image.turn_start,
        created_at=image.created_at,
    )


def place_pages(engine: Engine, process: Process, file: ImageFile) -> None:
    """Read the pages into swap (host, else disk) or, with no swap room, the device:
    one pass from the file straight into the frames (a staging buffer for the device)."""
    num_pages = len(file.image.checksums)
    if not num_pages:
        return
    memory = engine.memory
    tier = memory.swap_tier_for(num_pages) or Tier.DEVICE
    if tier is Tier.DEVICE and not memory.can_allocate(num_pages):
        raise OutOfMemory(f"no room for the {num_pages} pages of process {process.pid}")
    allocator = memory.tiers[tier]
    frames = sorted(
        memory.allocate(num_pages) if tier is Tier.DEVICE else allocator.allocate(num_pages)
    )
    try:
        with open(file.path, "rb", buffering=0) as handle:
            handle.seek(file.pages_at)
            engine.driver.import_pages(tier, frames, PageReader(file, handle))
    except BaseException as exc:
        allocator.free(frames)
        if isinstance(exc, OSError):
            raise CorruptImage(f"{file.path}: cannot read its pages: {exc}") from exc
        raise
    if tier is Tier.DEVICE:
        process.block_table = frames
    else:
        process.block_table = [NOT_RESIDENT] * num_pages
        process.swapped = {index: (tier, frame) for index, frame in enumerate(frames)}


def failed_process(pid: int, uid: int, model: str, error: str) -> Process:
    """A zombie standing for a process that could not be restored, so its owner learns why."""
    process = Process(
        pid=pid,
        params=SamplingParams(),
        token_ids=[],
        num_prompt_tokens=0,
        sampler_state=None,
        detokenizer=None,
        uid=uid,
        model=model,
    )
    process.exit(ExitStatus.ERROR, error)
    return process
