"""Where asset values live between steps: pickle protocol 5 with the array buffers beside the
pickle, written atomically and memory-mapped back.

Dagster's FilesystemIOManager pickles with protocol 4, which copies every NumPy block into a bytes
object before writing it (a transient second copy of the largest asset, the features: 1.3 GB at
5,000 tickers), and reads a value back by copying the whole file into memory again in every step
that loads it. Here the buffers (the columns, the index codes) are written as they are, 64-byte
aligned after the pickle stream, and a load maps the file copy-on-write: no read copy, pages come
from the page cache as the step touches them, and a step may still modify its arrays in place
without touching the file. A value is written to a temporary file and renamed into place, so a
crash mid-write leaves the previous value whole, and a step that has the old file mapped keeps
reading the old file, never a half-written one.

File: MAGIC, then a little-endian uint64 header (pickle length, buffer count, then offset and
length of each buffer), the pickle stream, the buffers. Files without MAGIC (plain pickles, as
earlier versions and Dagster's FilesystemIOManager wrote) load with pickle.load.
"""

from __future__ import annotations

import mmap
import os
import pickle
import struct
import tempfile
from pathlib import Path

import dagster as dg
from pydantic import Field
from upath import UPath

MAGIC = b"mlplatform.pickle5.v1\n"
_ALIGN = 64
_U64 = struct.Struct("<Q")


def _padding(offset: int) -> int:
    return -offset % _ALIGN


def write_value(path: Path, value: object) -> None:
    """Pickle `value` to `path` (protocol 5, buffers out of band), atomically."""
    buffers: list[pickle.PickleBuffer] = []
    stream = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    raws = [buffer.raw() for buffer in buffers]
    header_size = len(MAGIC) + _U64.size * (2 + 2 * len(raws))
    offset = header_size + len(stream)
    layout = []
    for raw in raws:
        offset += _padding(offset)
        layout.append((offset, raw.nbytes))
        offset += raw.nbytes
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(MAGIC)
            file.write(_U64.pack(len(stream)) + _U64.pack(len(raws)))
            for start, size in layout:
                file.write(_U64.pack(start) + _U64.pack(size))
            file.write(stream)
            for (start, _), raw in zip(layout, raws, strict=True):
                file.write(b"\0" * (start - file.tell()))
                file.write(raw)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_value(path: Path) -> object:
    """The value `write_value` wrote to `path` (or a plain pickle), its arrays mapped from the file
    copy-on-write."""
    with path.open("rb") as file:
        if file.read(len(MAGIC)) != MAGIC:
            file.seek(0)
            return pickle.load(file)
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY)
    view = memoryview(mapped)
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

    def dump_to_path(self, context: dg.OutputContext, obj: object, path: UPath) -> None:
        write_value(Path(path), obj)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> object:
        return read_value(Path(path))


class PickleIOManager(dg.ConfigurableIOManagerFactory):
    """Asset values as files in one folder, pickled with protocol 5 and memory-mapped back (see
    the module docstring for why not Dagster's FilesystemIOManager)."""

    base_dir: str = Field(description="Folder of the asset values; shared by every worker.")

    def create_io_manager(self, context: dg.InitResourceContext) -> dg.UPathIOManager:
        return _Values(base_path=UPath(self.base_dir))
