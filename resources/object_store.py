"""Object storage: a local directory (embedded) or S3 / any S3-compatible endpoint (production).

Besides whole objects, both stores take multipart uploads (S3's model: start, put numbered parts,
complete with the ordered part list, or abort), which is how resumable tus uploads reach the store
a part at a time."""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

_KEY = re.compile(r"^[A-Za-z0-9!_.*'()=\-]+(/[A-Za-z0-9!_.*'()=\-]+)*$")
# S3's rules for multipart uploads: every part but the last is at least 5 MiB; parts are numbered 1..10000.
MIN_PART_BYTES = 5 * 1024**2
MAX_PARTS = 10_000
COPY_BLOCK = 1024 * 1024
MULTIPART_DIR = ".multipart~"  # under a local store's root


def check_key(key: str) -> str:
    """Object keys are built by the platform; refuse anything that could escape its prefix."""
    if not _KEY.match(key) or any(part in {".", ".."} for part in key.split("/")) or len(key) > 900:
        raise ValueError(f"invalid object key {key!r}")
    return key


class ObjectStore(ABC):
    """Where uploads, media variants, the event lake and reports are kept."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    @abstractmethod
    def put_file(self, key: str, source: IO[bytes], content_type: str = "application/octet-stream") -> None:
        """Stream a file object into the store without holding it in memory."""

    @abstractmethod
    def open(self, key: str) -> IO[bytes]:
        """A readable binary stream of the object; raises FileNotFoundError if absent."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]: ...

    @abstractmethod
    def health(self) -> dict[str, Any]: ...

    @abstractmethod
    def size(self, key: str) -> int:
        """The object's size in bytes; raises FileNotFoundError if absent."""

    @abstractmethod
    def open_seekable(self, key: str) -> IO[bytes]:
        """A seekable binary stream of the object, for a few small reads at chosen offsets (S3: ranged
        GETs, so nothing is downloaded whole); raises FileNotFoundError if absent."""

    @abstractmethod
    def read_url(self, key: str, expires_s: int = 900) -> str:
        """A URL a program on this host (ffprobe) can read the object from, seeking as it needs:
        `file:` for the local store, a presigned GET for S3."""

    @abstractmethod
    def move(self, source: str, target: str, content_type: str = "application/octet-stream") -> None:
        """Give an object a new key (the old key is gone afterwards)."""

    # Multipart uploads. Parts may be put in any order and again (the last put of a number wins);
    # completing with the ordered (number, etag) list of the parts to keep assembles the object
    # atomically under `key` and discards every other part; aborting discards them all.

    @abstractmethod
    def start_multipart(self, key: str, content_type: str = "application/octet-stream") -> str:
        """Begin a multipart upload of `key`; returns its upload id."""

    @abstractmethod
    def put_part(self, key: str, upload_id: str, number: int, source: IO[bytes], size: int) -> str:
        """Store `size` bytes read from the seekable `source` (from its current position, which is
        left after them) as part `number`; returns the part's ETag."""

    @abstractmethod
    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> None:
        """Assemble the listed parts, in ascending number order, into the object `key`."""

    @abstractmethod
    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Discard a multipart upload and its parts; aborting one that is gone is not an error."""

    @abstractmethod
    def list_parts(self, key: str, upload_id: str) -> list[tuple[int, str, int]]:
        """The parts held for a multipart upload in progress: (number, etag, size), by number."""

    def get_bytes(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()


def _check_part_number(number: int) -> int:
    if not 1 <= number <= MAX_PARTS:
        raise ValueError(f"part numbers run from 1 to {MAX_PARTS}, not {number}")
    return number


def _check_part_list(parts: Sequence[tuple[int, str]]) -> None:
    numbers = [number for number, _ in parts]
    if not numbers:
        raise ValueError("a multipart upload is completed with at least one part")
    if any(b <= a for a, b in zip(numbers, numbers[1:], strict=False)):
        raise ValueError("parts are listed in ascending part-number order, each once")
    for number in numbers:
        _check_part_number(number)


def copy_stream(source: IO[bytes], target: IO[bytes], size: int) -> int:
    """Copy up to `size` bytes from `source`'s position to `target`'s: in the kernel when both are
    files (copy_file_range), else through a 1 MiB buffer. Returns how many bytes were copied."""
    copied = 0
    if hasattr(os, "copy_file_range"):
        try:
            source_fd, target_fd = source.fileno(), target.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            source_fd = target_fd = -1
        if source_fd >= 0:
            target.flush()
            read_at, write_at = source.tell(), target.tell()
            try:
                while copied < size:
                    n = os.copy_file_range(
                        source_fd, target_fd, min(size - copied, 1 << 30), read_at + copied, write_at + copied
                    )
                    if n == 0:
                        break
                    copied += n
            except OSError:  # not between these two files: copy through user space instead
                copied = 0
            source.seek(read_at + copied)
            target.seek(write_at + copied)
            if copied:
                return copied
    while copied < size:
        block = source.read(min(COPY_BLOCK, size - copied))
        if not block:
            break
        target.write(block)
        copied += len(block)
    return copied


@dataclass(kw_only=True)
class LocalObjectStore(ObjectStore):
    """Embedded: objects are files under `root`, keys are their relative paths."""

    root: str

    def _path(self, key: str) -> Path:
        return Path(self.root) / check_key(key)

    @staticmethod
    def _partial(path: Path) -> Path:
        # One temporary file per writer, so two concurrent writes of a key never share one.
        return path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._partial(path)
        try:
            tmp.write_bytes(data)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)

    def put_file(self, key: str, source: IO[bytes], content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._partial(path)
        try:
            with tmp.open("wb") as out:
                shutil.copyfileobj(source, out, 1024 * 1024)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)

    def open(self, key: str) -> IO[bytes]:
        path = self._path(key)
        if path.is_dir():  # "a" when only "a/b" exists: no such object, as on S3
            raise FileNotFoundError(key)
        return path.open("rb")

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        if not path.is_dir():
            path.unlink(missing_ok=True)

    def list(self, prefix: str = "") -> Iterator[str]:
        root = Path(self.root)
        if not root.is_dir():
            return
        keys = []
        for folder, dirs, files in os.walk(root):
            if folder == str(root) and MULTIPART_DIR in dirs:
                dirs.remove(MULTIPART_DIR)  # parts of unfinished multipart uploads are not objects
            base = Path(folder).relative_to(root)
            keys.extend((base / name).as_posix() for name in files if not name.endswith(".partial"))
        # Sorted as strings (S3 lists keys in byte order), not as paths.
        yield from sorted(key for key in keys if key.startswith(prefix))

    def health(self) -> dict[str, Any]:
        root = Path(self.root)
        root.mkdir(parents=True, exist_ok=True)
        usage = shutil.disk_usage(root)
        return {"backend": "local", "root": str(root), "free_bytes": usage.free}

    def size(self, key: str) -> int:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        return path.stat().st_size

    def open_seekable(self, key: str) -> IO[bytes]:
        return self.open(key)

    def read_url(self, key: str, expires_s: int = 900) -> str:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        return f"file:{path.resolve()}"

    def move(self, source: str, target: str, content_type: str = "application/octet-stream") -> None:
        old, new = self._path(source), self._path(target)
        if not old.is_file():
            raise FileNotFoundError(source)
        new.parent.mkdir(parents=True, exist_ok=True)
        old.replace(new)  # atomic: the same file system

    # Multipart: upload <id> is the folder `<root>/.multipart~/<id>/` ("~" is not allowed in keys, so
    # no key reaches it) with `key` (the object it makes), `data` and `index.json`. Parts that come
    # in order, as tus sends them, are written straight into `data` at their offsets (the index
    # lists them: number, etag, size), so completing them is a rename: no byte is copied again. A
    # part that comes out of order (or again, with another size, before the last) is kept as a file
    # `<n>.<etag>`; completing with one of those concatenates (in the kernel) into a new file.

    def _upload_dir(self, key: str, upload_id: str, *, must_exist: bool = True) -> Path:
        check_key(key)
        if not re.fullmatch(r"[0-9a-f]{32}", upload_id):
            raise ValueError(f"invalid upload id {upload_id!r}")
        folder = Path(self.root) / MULTIPART_DIR / upload_id
        if must_exist:
            try:
                named = (folder / "key").read_text()
            except FileNotFoundError:
                raise FileNotFoundError(f"no multipart upload {upload_id} (completed or aborted?)") from None
            if named != key:
                raise ValueError(f"multipart upload {upload_id} is not an upload of {key!r}")
        return folder

    @staticmethod
    def _index(folder: Path) -> list[dict[str, Any]]:
        try:
            return json.loads((folder / "index.json").read_text())
        except FileNotFoundError:
            return []

    @staticmethod
    def _save_index(folder: Path, index: list[dict[str, Any]]) -> None:
        tmp = folder / f".index.{uuid.uuid4().hex}.partial"
        tmp.write_text(json.dumps(index))
        tmp.replace(folder / "index.json")

    @contextmanager
    def _locked(self, folder: Path) -> Iterator[None]:
        with (folder / "key").open("rb") as anchor:
            fcntl.flock(anchor.fileno(), fcntl.LOCK_EX)
            yield

    def start_multipart(self, key: str, content_type: str = "application/octet-stream") -> str:
        upload_id = uuid.uuid4().hex
        folder = self._upload_dir(key, upload_id, must_exist=False)
        folder.mkdir(parents=True)
        (folder / "key").write_text(key)
        return upload_id

    def put_part(self, key: str, upload_id: str, number: int, source: IO[bytes], size: int) -> str:
        folder = self._upload_dir(key, upload_id)
        _check_part_number(number)
        etag = uuid.uuid4().hex
        with self._locked(folder):
            index = self._index(folder)
            count = len(index)
            in_data = (
                number == count + 1
                or number == count
                or (number < count and index[number - 1]["size"] == size)
            )
            if not in_data:
                if number <= count:  # the bytes in `data` stop being that part
                    index[number - 1]["etag"] = None
                    self._save_index(folder, index)
                self._put_part_file(folder, number, etag, source, size)
                return etag
            at = sum(part["size"] for part in index[: number - 1])
            if number <= count:  # rewritten in place: the old bytes stop being that part first
                index[number - 1]["etag"] = None
                self._save_index(folder, index)
            data = folder / "data"
            with data.open("r+b" if data.exists() else "w+b") as out:
                out.seek(at)
                copied = copy_stream(source, out, size)
                if copied != size:
                    raise ValueError(f"part {number}: the source held {copied} bytes, not {size}")
                if number >= count:
                    out.truncate(at + size)  # the last part may have a new length
            entry = {"number": number, "etag": etag, "size": size}
            index[number - 1 : number] = [entry]
            self._save_index(folder, index)
            for older in folder.glob(f"{number}.*"):
                older.unlink(missing_ok=True)
        return etag

    @staticmethod
    def _put_part_file(folder: Path, number: int, etag: str, source: IO[bytes], size: int) -> None:
        tmp = folder / f".{number}.{etag}.partial"
        try:
            with tmp.open("wb") as out:
                copied = copy_stream(source, out, size)
            if copied != size:
                raise ValueError(f"part {number}: the source held {copied} bytes, not {size}")
            for older in folder.glob(f"{number}.*"):
                older.unlink(missing_ok=True)
            tmp.rename(folder / f"{number}.{etag}")
        finally:
            tmp.unlink(missing_ok=True)

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> None:
        folder = self._upload_dir(key, upload_id)
        _check_part_list(parts)
        with self._locked(folder):
            index = self._index(folder)
            offsets = [sum(part["size"] for part in index[:i]) for i in range(len(index))]
            pieces: list[tuple[Path, int, int]] = []  # (file, offset, size) of each listed part
            for number, etag in parts:
                if number <= len(index) and index[number - 1]["etag"] == etag:
                    pieces.append((folder / "data", offsets[number - 1], index[number - 1]["size"]))
                elif (folder / f"{number}.{etag}").is_file():
                    pieces.append(
                        (folder / f"{number}.{etag}", 0, (folder / f"{number}.{etag}").stat().st_size)
                    )
                else:
                    raise ValueError(f"part {number} with that ETag was not uploaded (InvalidPart)")
            for (number, _), (_, _, size) in zip(parts[:-1], pieces[:-1], strict=True):
                if size < MIN_PART_BYTES:
                    raise ValueError(f"part {number} is smaller than {MIN_PART_BYTES} bytes (EntityTooSmall)")
            path = self._path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._partial(path)
            try:
                if [number for number, _ in parts] == list(range(1, len(parts) + 1)) and all(
                    file.name == "data" for file, _, _ in pieces
                ):
                    # The parts 1..n, as they lie in `data`: drop what follows them and rename.
                    (folder / "data").replace(tmp)
                    os.truncate(tmp, sum(size for _, _, size in pieces))
                else:
                    with tmp.open("wb") as out:
                        for file, offset, size in pieces:
                            with file.open("rb") as piece:
                                piece.seek(offset)
                                copy_stream(piece, out, size)
                tmp.replace(path)
            finally:
                tmp.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            folder = self._upload_dir(key, upload_id)
        except FileNotFoundError:
            return
        shutil.rmtree(folder, ignore_errors=True)

    def list_parts(self, key: str, upload_id: str) -> list[tuple[int, str, int]]:
        folder = self._upload_dir(key, upload_id)
        with self._locked(folder):
            parts = {
                p["number"]: (p["number"], p["etag"], p["size"]) for p in self._index(folder) if p["etag"]
            }
            for file in folder.glob("[0-9]*.*"):
                number, etag = file.name.split(".")
                parts[int(number)] = (int(number), etag, file.stat().st_size)
        return [parts[number] for number in sorted(parts)]


@dataclass(kw_only=True)
class S3ObjectStore(ObjectStore):
    """Production: objects in `bucket` under `prefix`; credentials from boto3's usual chain."""

    bucket: str
    endpoint_url: str | None = None
    region_name: str = "us-east-1"
    prefix: str = ""
    create_bucket: bool = False

    _client: Any = field(default=None, init=False, repr=False, compare=False)

    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url or None,
                region_name=self.region_name,
                config=Config(retries={"max_attempts": 5, "mode": "standard"}),
            )
            if self.create_bucket:
                from botocore.exceptions import ClientError

                try:
                    self._client.head_bucket(Bucket=self.bucket)
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") not in {"404", "NoSuchBucket", "NotFound"}:
                        raise
                    # Outside us-east-1, S3 requires the region as the bucket's location constraint.
                    location = (
                        {"CreateBucketConfiguration": {"LocationConstraint": self.region_name}}
                        if self.region_name != "us-east-1"
                        else {}
                    )
                    self._client.create_bucket(Bucket=self.bucket, **location)
        return self._client

    def _base(self) -> str:
        """The bucket-level prefix every key lives under, with its trailing slash ("" for none)."""
        base = self.prefix.strip("/")
        return f"{base}/" if base else ""

    def _key(self, key: str) -> str:
        return self._base() + check_key(key)

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.client().put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type)

    def put_file(self, key: str, source: IO[bytes], content_type: str = "application/octet-stream") -> None:
        # upload_fileobj streams in multipart chunks; it never reads the whole file into memory.
        self.client().upload_fileobj(
            source, self.bucket, self._key(key), ExtraArgs={"ContentType": content_type}
        )

    def open(self, key: str) -> IO[bytes]:
        from botocore.exceptions import ClientError

        try:
            return self.client().get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                raise FileNotFoundError(key) from exc
            raise

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client().head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise

    def delete(self, key: str) -> None:
        self.client().delete_object(Bucket=self.bucket, Key=self._key(key))

    def list(self, prefix: str = "") -> Iterator[str]:
        # `prefix` is a plain string prefix of keys (like "media/" or "media/2026"), not a key, so it
        # is not checked like one; the store's own prefix always ends in "/" so that a store under
        # "tenant" never lists the keys of one under "tenant2".
        base = self._base()
        paginator = self.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=base + prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"][len(base) :]

    def health(self) -> dict[str, Any]:
        self.client().head_bucket(Bucket=self.bucket)
        return {"backend": "s3", "bucket": self.bucket, "endpoint": self.endpoint_url or "aws"}

    def size(self, key: str) -> int:
        from botocore.exceptions import ClientError

        try:
            return self.client().head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                raise FileNotFoundError(key) from exc
            raise

    def open_seekable(self, key: str) -> IO[bytes]:
        raw = _RangedReader(self.client(), self.bucket, self._key(key), self.size(key))
        return io.BufferedReader(raw, buffer_size=64 * 1024)

    def read_url(self, key: str, expires_s: int = 900) -> str:
        return self.client().generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=expires_s
        )

    def move(self, source: str, target: str, content_type: str = "application/octet-stream") -> None:
        # A managed copy: server side, in parts (UploadPartCopy) above the multipart threshold, so
        # objects beyond CopyObject's 5 GB limit move too and no byte passes through this host.
        from botocore.exceptions import ClientError

        try:
            self.client().copy(
                {"Bucket": self.bucket, "Key": self._key(source)},
                self.bucket,
                self._key(target),
                ExtraArgs={"ContentType": content_type, "MetadataDirective": "REPLACE"},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                raise FileNotFoundError(source) from exc
            raise
        self.client().delete_object(Bucket=self.bucket, Key=self._key(source))

    def start_multipart(self, key: str, content_type: str = "application/octet-stream") -> str:
        created = self.client().create_multipart_upload(
            Bucket=self.bucket, Key=self._key(key), ContentType=content_type
        )
        return created["UploadId"]

    def put_part(self, key: str, upload_id: str, number: int, source: IO[bytes], size: int) -> str:
        # boto3 streams a file body (and seeks back on a retry); a part is at most a few MiB anyway.
        start = source.tell()
        done = self.client().upload_part(
            Bucket=self.bucket,
            Key=self._key(key),
            UploadId=upload_id,
            PartNumber=_check_part_number(number),
            Body=_Window(source, size),
            ContentLength=size,
        )
        source.seek(start + size)
        return done["ETag"]

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> None:
        _check_part_list(parts)
        self.client().complete_multipart_upload(
            Bucket=self.bucket,
            Key=self._key(key),
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": number, "ETag": etag} for number, etag in parts]},
        )

    def abort_multipart(self, key: str, upload_id: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client().abort_multipart_upload(Bucket=self.bucket, Key=self._key(key), UploadId=upload_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in {"NoSuchUpload", "404"}:
                raise

    def list_parts(self, key: str, upload_id: str) -> list[tuple[int, str, int]]:
        paginator = self.client().get_paginator("list_parts")
        return [
            (part["PartNumber"], part["ETag"], part["Size"])
            for page in paginator.paginate(Bucket=self.bucket, Key=self._key(key), UploadId=upload_id)
            for part in page.get("Parts", [])
        ]


class _SeekableView(io.RawIOBase):
    """A read-only, seekable view of `size` bytes; a subclass says how to read `n` bytes at `pos`."""

    def __init__(self, size: int) -> None:
        self._size, self._pos = size, 0

    @abstractmethod
    def _read_at(self, pos: int, n: int) -> bytes: ...

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._size - self._pos)
        if n <= 0:
            return 0
        data = self._read_at(self._pos, n)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


class _Window(_SeekableView):
    """`size` bytes of a seekable file from its current position, as a file of its own (a part's
    body: botocore may read it to the end to checksum it, then seek back to send it)."""

    def __init__(self, source: IO[bytes], size: int) -> None:
        super().__init__(size)
        self._source, self._start = source, source.tell()

    def _read_at(self, pos: int, n: int) -> bytes:
        self._source.seek(self._start + pos)
        return self._source.read(n)


class _RangedReader(_SeekableView):
    """A seekable view of an S3 object: each read is one ranged GET of what was asked for."""

    def __init__(self, client: Any, bucket: str, key: str, size: int) -> None:
        super().__init__(size)
        self._client, self._bucket, self._key = client, bucket, key

    def _read_at(self, pos: int, n: int) -> bytes:
        ranged = f"bytes={pos}-{pos + n - 1}"
        return self._client.get_object(Bucket=self._bucket, Key=self._key, Range=ranged)["Body"].read()
