"""One contract for every object store: a local directory and S3 (moto's server, over HTTP)."""

from __future__ import annotations

import hashlib
import io
import uuid
from pathlib import Path

import pytest

from resources.object_store import LocalObjectStore, ObjectStore, S3ObjectStore, check_key

MB = 1024 * 1024
MULTIPART_THRESHOLD = 8 * MB  # boto3's default TransferConfig.multipart_threshold


def _bucket() -> str:
    return f"test-{uuid.uuid4().hex[:16]}"


@pytest.fixture(params=["local", "s3", "s3-prefixed"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(root=str(tmp_path / "objects"))
    request.getfixturevalue("aws_credentials")
    endpoint = request.getfixturevalue("s3_endpoint")
    prefix = "tenant/" if request.param == "s3-prefixed" else ""
    return S3ObjectStore(bucket=_bucket(), endpoint_url=endpoint, create_bucket=True, prefix=prefix)


class RecordingReader(io.RawIOBase):
    """A readable file of `size` deterministic bytes that remembers how much each read asked for."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("rb")
        self.reads: list[int] = []

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.reads.append(size)
        return self._file.read(size)

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._file.close()
        super().close()


def _big_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    block = hashlib.sha256(b"seed").digest() * (MB // 32)
    with path.open("wb") as out:
        written = 0
        while written < size:
            chunk = block[: min(len(block), size - written)]
            chunk = bytes([written // MB % 256]) + chunk[1:]  # every MB differs
            out.write(chunk)
            digest.update(chunk)
            written += len(chunk)
    return digest.hexdigest()


def test_put_and_get_bytes(store: ObjectStore) -> None:
    store.put_bytes("uploads/a.txt", b"hello", content_type="text/plain")
    assert store.get_bytes("uploads/a.txt") == b"hello"
    store.put_bytes("uploads/a.txt", "مرحبا".encode())  # overwrite
    assert store.get_bytes("uploads/a.txt").decode() == "مرحبا"
    store.put_bytes("empty", b"")
    assert store.get_bytes("empty") == b""
    with store.open("uploads/a.txt") as stream:
        assert stream.read(2) == "مرحبا".encode()[:2]


def test_missing_object_is_file_not_found(store: ObjectStore) -> None:
    with pytest.raises(FileNotFoundError):
        store.get_bytes("nope/missing.bin")
    store.put_bytes("dir/child", b"x")
    # A "directory" is not an object on any backend.
    with pytest.raises(FileNotFoundError):
        store.get_bytes("dir")
    assert not store.exists("dir")


def test_exists_and_delete(store: ObjectStore) -> None:
    assert not store.exists("a/b.bin")
    store.put_bytes("a/b.bin", b"1")
    assert store.exists("a/b.bin")
    store.delete("a/b.bin")
    assert not store.exists("a/b.bin")
    store.delete("a/b.bin")  # deleting what is gone is not an error
    store.delete("never/existed")
    assert list(store.list()) == []


def test_list_and_prefixes(store: ObjectStore) -> None:
    keys = [
        "media/2026/x.mp4",
        "media/2026/y.mp4",
        "media-old/z.mp4",
        "medal.png",
        "reports/r.csv",
        "a-c",
        "a/b",
    ]
    for key in keys:
        store.put_bytes(key, key.encode())
    # Every backend lists in key (byte) order, as S3 does.
    assert list(store.list()) == sorted(keys)
    assert list(store.list("media/")) == ["media/2026/x.mp4", "media/2026/y.mp4"]
    assert list(store.list("media")) == ["media-old/z.mp4", "media/2026/x.mp4", "media/2026/y.mp4"]
    assert list(store.list("med")) == ["medal.png", "media-old/z.mp4", "media/2026/x.mp4", "media/2026/y.mp4"]
    assert list(store.list("media/2026/y")) == ["media/2026/y.mp4"]
    assert list(store.list("nothing/")) == []
    for key in store.list():
        assert store.get_bytes(key) == key.encode()


def test_put_file_streams_a_multipart_sized_file(store: ObjectStore, tmp_path: Path) -> None:
    size = MULTIPART_THRESHOLD + 3 * MB + 17  # above the threshold: S3 gets a multipart upload
    source = tmp_path / "big.bin"
    digest = _big_file(source, size)
    reader = RecordingReader(source)
    with reader:
        store.put_file("uploads/big.bin", reader, content_type="video/mp4")  # type: ignore[arg-type]
    # Streamed: no single read asked for the whole file (or "everything", -1).
    assert reader.reads
    assert max(reader.reads) < size
    assert -1 not in reader.reads

    hasher = hashlib.sha256()
    total = 0
    with store.open("uploads/big.bin") as stream:
        while chunk := stream.read(MB):
            hasher.update(chunk)
            total += len(chunk)
    assert total == size
    assert hasher.hexdigest() == digest
    assert list(store.list("uploads/")) == ["uploads/big.bin"]


def test_put_file_of_a_few_megabytes(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "mid.bin"
    digest = _big_file(source, 3 * MB + 5)
    with source.open("rb") as stream:
        store.put_file("mid.bin", stream)
    assert hashlib.sha256(store.get_bytes("mid.bin")).hexdigest() == digest


INVALID_KEYS = ["../x", "/abs", "a/../../x", "a/./b", "a//b", "", "a/", "..", "with space", "a\\b", "x" * 901]


@pytest.mark.parametrize("key", INVALID_KEYS)
def test_invalid_keys_raise_value_error(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid object key"):
        store.put_bytes(key, b"x")
    with pytest.raises(ValueError):
        store.put_file(key, io.BytesIO(b"x"))
    with pytest.raises(ValueError):
        store.get_bytes(key)
    with pytest.raises(ValueError):
        store.exists(key)
    with pytest.raises(ValueError):
        store.delete(key)
    assert list(store.list()) == []


@pytest.mark.parametrize("key", ["a", "media/2026/11/uuid-1.mp4", "x_y.z(1)!*'", "A/B.C"])
def test_valid_keys(key: str) -> None:
    assert check_key(key) == key


def test_health(store: ObjectStore) -> None:
    health = store.health()
    assert health["backend"] in {"local", "s3"}
    assert health["backend"] == ("local" if isinstance(store, LocalObjectStore) else "s3")


def test_local_store_stays_inside_its_root(tmp_path: Path) -> None:
    store = LocalObjectStore(root=str(tmp_path / "root"))
    (tmp_path / "outside.txt").write_bytes(b"secret")
    with pytest.raises(ValueError):
        store.get_bytes("../outside.txt")
    store.put_bytes("in/side.txt", b"ok")
    assert (tmp_path / "root" / "in" / "side.txt").read_bytes() == b"ok"
    # Temporary files of an interrupted write are never listed and never left behind by a good one.
    (tmp_path / "root" / "in" / ".side.txt.123.partial").write_bytes(b"half")
    assert list(store.list()) == ["in/side.txt"]
    assert sorted(p.name for p in (tmp_path / "root" / "in").iterdir()) == [
        ".side.txt.123.partial",
        "side.txt",
    ]


def test_local_failed_put_file_leaves_nothing(tmp_path: Path) -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            raise OSError("client went away")

    store = LocalObjectStore(root=str(tmp_path / "root"))
    with pytest.raises(OSError, match="client went away"):
        store.put_file("up/broken.bin", Broken())  # type: ignore[arg-type]
    assert not store.exists("up/broken.bin")
    assert list((tmp_path / "root" / "up").iterdir()) == []


def test_s3_multipart_upload_was_used(aws_credentials: None, s3_endpoint: str, tmp_path: Path) -> None:
    store = S3ObjectStore(bucket=_bucket(), endpoint_url=s3_endpoint, create_bucket=True)
    source = tmp_path / "big.bin"
    _big_file(source, MULTIPART_THRESHOLD + MB)
    with source.open("rb") as stream:
        store.put_file("big.bin", stream, content_type="video/mp4")
    head = store.client().head_object(Bucket=store.bucket, Key="big.bin")
    # A multipart object's ETag is "<md5 of part md5s>-<part count>".
    assert head["ETag"].strip('"').endswith("-2")
    assert head["ContentType"] == "video/mp4"
    assert head["ContentLength"] == MULTIPART_THRESHOLD + MB


def test_s3_prefixed_stores_do_not_see_each_other(aws_credentials: None, s3_endpoint: str) -> None:
    bucket = _bucket()
    tenant = S3ObjectStore(bucket=bucket, endpoint_url=s3_endpoint, create_bucket=True, prefix="tenant")
    tenant2 = S3ObjectStore(bucket=bucket, endpoint_url=s3_endpoint, create_bucket=True, prefix="/tenant2/")
    root = S3ObjectStore(bucket=bucket, endpoint_url=s3_endpoint)
    tenant.put_bytes("x/1", b"1")
    tenant2.put_bytes("y/2", b"2")
    assert list(tenant.list()) == ["x/1"]
    assert list(tenant2.list()) == ["y/2"]
    assert list(tenant.list("y")) == []
    assert list(root.list()) == ["tenant/x/1", "tenant2/y/2"]
    assert not tenant.exists("y/2")


def test_s3_creates_its_bucket_outside_us_east_1(aws_credentials: None, s3_endpoint: str) -> None:
    store = S3ObjectStore(
        bucket=_bucket(), endpoint_url=s3_endpoint, create_bucket=True, region_name="eu-west-1"
    )
    store.put_bytes("k", b"v")
    location = store.client().get_bucket_location(Bucket=store.bucket)["LocationConstraint"]
    assert location == "eu-west-1"
    assert store.health() == {"backend": "s3", "bucket": store.bucket, "endpoint": s3_endpoint}
