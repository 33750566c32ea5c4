"""What the API host keeps of uploads in flight (`<data_dir>/uploads`).

- A multipart (`POST /media/upload`) body is staged whole as `<id>` until it is checked.
- A tus upload keeps only the unfilled tail of its next object-store part, as `<id>.<offset>.tail`
  (the bytes between the parts already stored and `offset`, under one part). A PATCH builds the next
  tail in a private `<id>.<random>.work` file from a copy of the current one and renames it in place
  once its bytes are accounted for, so a refused or interrupted chunk leaves the committed tail as
  it was. The committed tail is also the upload's lock: a PATCH holds an exclusive `flock` on it.

tus tails live on the API host that received them: pin a tus upload to one API host (sticky by
upload id), or mount one volume on every API host."""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO


class UploadBusy(Exception):
    """Another request holds this upload (a PATCH or a DELETE in progress)."""


class TailMoved(Exception):
    """The tail at this offset is no longer the upload's (another request committed meanwhile)."""


@dataclass(kw_only=True)
class UploadStaging:
    """The staging folder `root` of one API host (the housekeeping job sweeps what is left in it)."""

    root: str

    def path(self, name: str | uuid.UUID) -> Path:
        return Path(self.root) / _id(name)  # names are ids; anything else is refused

    def tail(self, upload_id: str | uuid.UUID, offset: int) -> Path:
        return Path(self.root) / f"{_id(upload_id)}.{int(offset)}.tail"

    def work(self, upload_id: str | uuid.UUID) -> Path:
        """A new private file in which one request builds the next tail."""
        return Path(self.root) / f"{_id(upload_id)}.{uuid.uuid4().hex}.work"

    def files(self, name: str | uuid.UUID) -> list[Path]:
        """Every file held for `name`: a staged body, tails, work files."""
        base = _id(name)
        root = Path(self.root)
        return [root / base, *root.glob(f"{base}.*")]

    def held_bytes(self, name: str | uuid.UUID) -> int:
        total = 0
        for path in self.files(name):
            with suppress(FileNotFoundError):
                total += path.stat().st_size
        return total

    def remove(self, name: str | uuid.UUID) -> bool:
        """Delete every file held for `name`; True if there was any."""
        existed = False
        for path in self.files(name):
            try:
                path.unlink()
                existed = True
            except FileNotFoundError:
                pass
        return existed

    @contextmanager
    def hold(self, upload_id: str | uuid.UUID, offset: int) -> Iterator[IO[bytes]]:
        """The committed tail of `upload_id` at `offset`, open for reading and locked (exclusive,
        without waiting) while the block runs. Raises UploadBusy if another request holds it and
        TailMoved if it is not (or no longer) the tail at `offset`."""
        path = self.tail(upload_id, offset)
        try:
            tail = path.open("rb")
        except FileNotFoundError:
            raise TailMoved(f"no tail at offset {offset}") from None
        with tail:
            lock(tail)
            if os.fstat(tail.fileno()).st_nlink == 0:  # committed over and unlinked before we locked it
                raise TailMoved(f"the tail at offset {offset} was replaced")
            yield tail


def lock(file: IO[bytes]) -> None:
    """An exclusive lock on an open file, released when it is closed; UploadBusy if already held."""
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UploadBusy("another request is writing this upload; retry in a moment") from None


def _id(name: str | uuid.UUID) -> str:
    return str(uuid.UUID(str(name)))
