"""Where asset values live between steps: pickle protocol 5 with the array buffers beside the
pickle, written atomically and memory-mapped back.

Dagster's FilesystemIOManager pickles with protocol 4, which copies every NumPy block into a bytes
object before writing it (a transient second copy of the largest asset, the features: 1.3 GB at
5,000 tickers), and reads a value back by copying the whole file into memory again in every step
that loads it. Here the buffers (the columns, the index codes) are written as they are, 64-byte
aligned after the pickle stream (on a local disk, copied in through mapped windows of the file on
every core), and a load maps the file copy-on-write: no read copy, pages come
from the page cache as the step touches them, and a step may still modify its arrays in place
without touching the file. A value is written to a temporary file and renamed into place, so a
process that dies mid-write leaves the previous value whole (its temporary file is removed by the
next write of that value on the same host), and a step that has the old file mapped keeps reading
the old file, never a half-written one. That last guarantee is the local filesystem's: on a network
filesystem another host's replace can pull the old file from under a mapping, so values in a shared
folder are read whole instead (`memory_map=False`), as pickle.load did. Nothing is fsynced: an
operating-system crash can lose the latest values, which the next run recomputes.

File: MAGIC, then a little-endian uint64 header (pickle length, buffer count, then offset and
length of each buffer), the pickle stream, the buffers. Files without MAGIC (plain pickles, as
earlier versions and Dagster's FilesystemIOManager wrote) load with pickle.load.
"""

from __future__ import annotations

import errno
import mmap
import os
import pickle
import socket
import struct
import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
from pydantic import Field
from upath import UPath

from mlplatform.parallel import in_threads
from mlplatform.registry import process_gone

MAGIC = b"mlplatform.pickle5.v1\n"
_ALIGN = 64
# bytes of the file mapped and filled per piece of work (a multiple of mmap.ALLOCATIONGRANULARITY)
_WINDOW = 16 * 2**20
_CANNOT_MAP = {errno.ENODEV, errno.EOPNOTSUPP, errno.EINVAL, errno.EACCES}
_U64 = struct.Struct("<Q")


def _umask() -> int:
    """The process's umask, read where Linux shows it: setting it to read it back would race with
    other threads creating files."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp's 0600 shuts other workers out


def _padding(offset: int) -> int:
    return -offset % _ALIGN


def write_value(path: Path, value: object, *, memory_map: bool = True) -> None:
    """Pickle `value` to `path` (protocol 5, buffers out of band), atomically: the buffers copied
    through mapped windows on every core, or written one after another with `memory_map=False`
    (a network filesystem)."""
    buffers: list[pickle.PickleBuffer] = []
    stream = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    raws = [buffer.raw() for buffer in buffers]
    header_size = len(MAGIC) + _U64.size * (2 + 2 * len(raws))
    offset = header_size + len(stream)
    starts = []
    for raw in raws:
        offset += _padding(offset)
        starts.append(offset)
        offset += raw.nbytes
    head = [MAGIC, _U64.pack(len(stream)) + _U64.pack(len(raws))]
    head += [
        _U64.pack(start) + _U64.pack(raw.nbytes) for start, raw in zip(starts, raws, strict=True)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_writers_files(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{_temporary_prefix(path)}{os.getpid()}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(fd, _FILE_MODE)
            file.write(b"".join(head))
            file.write(stream)
            file.flush()
            by_windows = memory_map and bool(raws) and hasattr(os, "posix_fallocate")  # not macOS
            if not (by_windows and _map_buffers(fd, offset, starts, raws)):
                for start, raw in zip(starts, raws, strict=True):
                    file.seek(start)
                    file.write(raw)
                file.truncate(offset)  # holes between buffers read as zeros, to the last padding
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _map_buffers(fd: int, size: int, starts: list[int], raws: list[memoryview]) -> bool:
    """The buffers copied to their offsets through mapped windows of the file, one window per
    piece of work on every core; False where the filesystem cannot map or reserve the file (some
    FUSE mounts), and the caller writes them as a stream instead.

    The file's blocks are reserved first, so a full disk raises OSError here (a write into a
    mapping past the free space would kill the process instead; copy-on-write filesystems such
    as btrfs and ZFS reserve nothing, and keep that risk); reserved space reads as zeros.
    Each window is unmapped once copied, so the file never counts much in the process's memory.
    The page cache is filled on every core: a 498 MiB float32 block in 0.19 s against 0.47 s
    for one stream (benchmarks/bench_kernels.py), the features at 2,000 tickers written first in
    a fresh process in 0.72 s against 1.1 s.
    """
    first = starts[0] - starts[0] % mmap.ALLOCATIONGRANULARITY

    def copy(window: int) -> None:
        end = min(window + _WINDOW, size)
        with mmap.mmap(fd, end - window, offset=window) as mapped:
            target = np.frombuffer(mapped, dtype=np.uint8)  # numpy copies without the GIL
            try:
                for start, raw in zip(starts, raws, strict=True):
                    low, high = max(start, window), min(start + raw.nbytes, end)
                    if low < high:
                        source = np.frombuffer(raw, dtype=np.uint8)
                        target[low - window : high - window] = source[low - start : high - start]
            finally:
                del target  # the mapping closes only once nothing exports it

    try:
        os.posix_fallocate(fd, 0, size)
        in_threads(copy, range(first, size, _WINDOW))
    except OSError as exc:
        if exc.errno not in _CANNOT_MAP:
            raise
        return False
    return True


def _temporary_prefix(path: Path) -> str:
    return f".tmp-{path.name}-{socket.gethostname()}-"


def _remove_dead_writers_files(path: Path) -> None:
    """Temporary files of `path` left by processes of this host that no longer run (killed
    mid-write); a live writer's file is left alone."""
    prefix = _temporary_prefix(path)
    for leftover in path.parent.glob(f"{prefix}*"):
        pid = leftover.name[len(prefix) :].split("-", 1)[0]
        if process_gone(socket.gethostname(), pid):
            leftover.unlink(missing_ok=True)


def read_value(path: Path, *, memory_map: bool = True) -> object:
    """The value `write_value` wrote to `path` (or a plain pickle): its arrays mapped from the file
    copy-on-write, or read into memory with `memory_map=False`."""
    with path.open("rb") as file:
        if file.read(len(MAGIC)) != MAGIC:
            file.seek(0)
            return pickle.load(file)
        if memory_map:
            data: mmap.mmap | bytearray = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY)
        else:
            file.seek(0)
            data = bytearray(os.fstat(file.fileno()).st_size)
            file.readinto(data)
    view = memoryview(data)
    at = len(MAGIC)
    stream_size, count = _U64.unpack_from(view, at)[0], _U64.unpack_from(view, at + 8)[0]
    at += 16
    buffers = []
    for _ in range(count):
        start, size = _U64.unpack_from(view, at)[0], _U64.unpack_from(view, at + 8)[0]
        buffers.append(view[start : start + size])
        at += 16
    return pickle.loads(view[at : at + stream_size], buffers=buffers)


class _Values(dg.UPathIOManager):
    extension = ""  # the same file names as Dagster's FilesystemIOManager

    def __init__(self, base_path: UPath, memory_map: bool) -> None:
        super().__init__(base_path=base_path)
        self.memory_map = memory_map

    def dump_to_path(self, context: dg.OutputContext, obj: object, path: UPath) -> None:
        write_value(Path(path), obj, memory_map=self.memory_map)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> object:
        return read_value(Path(path), memory_map=self.memory_map)


class PickleIOManager(dg.ConfigurableIOManagerFactory):
    """Asset values as files in one folder, pickled with protocol 5 and memory-mapped back (see
    the module docstring for why not Dagster's FilesystemIOManager)."""

    base_dir: str = Field(
        description="Folder of the asset values on a mounted filesystem; shared by every worker."
    )
    memory_map: bool = Field(
        default=True,
        description="Map values from their files and write them through mapped windows (a local "
        "disk: no read copy per step, the page cache filled on every core). Off for a folder on a "
        "network filesystem (NFS, SMB), where a value another host replaces could fail a step "
        "that still maps the old file: values are then read whole and written in one stream.",
    )

    def create_io_manager(self, context: dg.InitResourceContext) -> dg.UPathIOManager:
        base = UPath(self.base_dir)
        if base.protocol not in ("", "file", "local"):
            raise dg.DagsterInvalidConfigError(
                f"PickleIOManager.base_dir {self.base_dir!r}: asset values need a folder on a "
                f"mounted filesystem, not {base.protocol}:// storage",
                [],
                None,
            )
        return _Values(base_path=base, memory_map=self.memory_map)
