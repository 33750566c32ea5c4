"""One contract for every object store: a local directory and S3 (moto's server, over HTTP), for whole
objects and multipart uploads."""

from __future__ import annotations

import hashlib
import io
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from resources.object_store import (
    MIN_PART_BYTES,
    MULTIPART_DIR,
    LocalObjectStore,
    ObjectStore,
    S3ObjectStore,
    check_key,
)

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

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

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


# ---------------------------------------------------------------------------------------- multipart


def _open_uploads(store: ObjectStore) -> list:
    """Multipart uploads neither completed nor aborted."""
    if isinstance(store, S3ObjectStore):
        return store.client().list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
    return list((Path(store.root) / MULTIPART_DIR).glob("*"))


def _blocks(*sizes: int) -> list[bytes]:
    return [bytes([65 + i]) * size for i, size in enumerate(sizes)]


def test_multipart_upload_assembles_the_listed_parts(store: ObjectStore) -> None:
    first, second, last = _blocks(MIN_PART_BYTES, MIN_PART_BYTES + 3, 17)
    upload_id = store.start_multipart("uploads/tus/a", content_type="video/mp4")
    # Out of order, and part 1 twice: the last put of a number wins.
    etag2 = store.put_part("uploads/tus/a", upload_id, 2, io.BytesIO(second), len(second))
    stale = store.put_part("uploads/tus/a", upload_id, 1, io.BytesIO(b"x" * MIN_PART_BYTES), MIN_PART_BYTES)
    etag1 = store.put_part("uploads/tus/a", upload_id, 1, io.BytesIO(first), len(first))
    etag3 = store.put_part("uploads/tus/a", upload_id, 3, io.BytesIO(last + b"not this"), len(last))
    assert len({stale, etag1, etag2, etag3}) == 4
    assert store.list_parts("uploads/tus/a", upload_id) == [
        (1, etag1, len(first)),
        (2, etag2, len(second)),
        (3, etag3, len(last)),
    ]
    # Parts in progress are not objects.
    assert list(store.list()) == [] and not store.exists("uploads/tus/a")
    assert len(_open_uploads(store)) == 1

    store.complete_multipart("uploads/tus/a", upload_id, [(1, etag1), (2, etag2), (3, etag3)])
    assert store.get_bytes("uploads/tus/a") == first + second + last
    assert store.size("uploads/tus/a") == len(first + second + last)
    assert list(store.list()) == ["uploads/tus/a"]
    assert _open_uploads(store) == []


def test_unlisted_parts_are_discarded(store: ObjectStore) -> None:
    first, second = _blocks(MIN_PART_BYTES, 10)
    upload_id = store.start_multipart("k")
    etag1 = store.put_part("k", upload_id, 1, io.BytesIO(first), len(first))
    store.put_part("k", upload_id, 2, io.BytesIO(second), len(second))
    store.complete_multipart("k", upload_id, [(1, etag1)])
    assert store.get_bytes("k") == first
    assert _open_uploads(store) == []


def test_multipart_refuses_what_s3_refuses(store: ObjectStore) -> None:
    small, last = _blocks(1024, 10)
    upload_id = store.start_multipart("k")
    etag1 = store.put_part("k", upload_id, 1, io.BytesIO(small), len(small))
    etag2 = store.put_part("k", upload_id, 2, io.BytesIO(last), len(last))
    with pytest.raises((ValueError, ClientError), match="EntityTooSmall|smaller than"):
        store.complete_multipart("k", upload_id, [(1, etag1), (2, etag2)])
    with pytest.raises((ValueError, ClientError), match="InvalidPart|ETag"):
        store.complete_multipart("k", upload_id, [(2, etag1)])
    with pytest.raises(ValueError, match="ascending"):
        store.complete_multipart("k", upload_id, [(2, etag2), (1, etag1)])
    with pytest.raises(ValueError, match="part numbers"):
        store.put_part("k", upload_id, 0, io.BytesIO(b"x"), 1)
    assert not store.exists("k")
    # A single part may be as small as it likes: it is the last.
    store.complete_multipart("k", upload_id, [(1, etag1)])
    assert store.get_bytes("k") == small


def test_abort_discards_every_part(store: ObjectStore) -> None:
    upload_id = store.start_multipart("uploads/tus/gone")
    store.put_part("uploads/tus/gone", upload_id, 1, io.BytesIO(b"abc"), 3)
    other = store.start_multipart("uploads/tus/kept")
    store.abort_multipart("uploads/tus/gone", upload_id)
    assert len(_open_uploads(store)) == 1  # only the other upload
    store.abort_multipart("uploads/tus/gone", upload_id)  # aborting what is gone is not an error
    assert not store.exists("uploads/tus/gone") and list(store.list()) == []
    store.abort_multipart("uploads/tus/kept", other)
    assert _open_uploads(store) == []


def test_put_part_streams_a_file_from_its_position(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "tail.bin"
    digest = _big_file(source, MIN_PART_BYTES + 100)
    upload_id = store.start_multipart("p")
    reader = RecordingReader(source)
    with reader:
        etag = store.put_part("p", upload_id, 1, reader, MIN_PART_BYTES + 100)  # type: ignore[arg-type]
    assert -1 not in reader.reads and max(reader.reads, default=0) < MIN_PART_BYTES + 100
    with source.open("rb") as f:
        f.seek(100)
        tail_etag = store.put_part("p", upload_id, 2, f, MIN_PART_BYTES)
        assert f.tell() == 100 + MIN_PART_BYTES
    store.complete_multipart("p", upload_id, [(1, etag), (2, tail_etag)])
    data = store.get_bytes("p")
    assert hashlib.sha256(data[: MIN_PART_BYTES + 100]).hexdigest() == digest
    assert data[MIN_PART_BYTES + 100 :] == source.read_bytes()[100 : 100 + MIN_PART_BYTES]


def test_seekable_reads_urls_and_moves(store: ObjectStore) -> None:
    import urllib.request

    data = bytes(range(256)) * 1024
    store.put_bytes("uploads/tus/x", data)
    assert store.size("uploads/tus/x") == len(data)
    with store.open_seekable("uploads/tus/x") as stream:
        assert stream.seek(0, io.SEEK_END) == len(data)
        stream.seek(1000)
        assert stream.read(5) == data[1000:1005]
        stream.seek(len(data) - 3)
        assert stream.read(10) == data[-3:]
    url = store.read_url("uploads/tus/x")
    if isinstance(store, LocalObjectStore):
        assert url.startswith("file:/") and Path(url.removeprefix("file:")).read_bytes() == data
    else:
        with urllib.request.urlopen(url) as response:  # presigned: no credentials needed
            assert response.read() == data

    store.move("uploads/tus/x", "media/m/original", content_type="audio/wav")
    assert not store.exists("uploads/tus/x") and store.get_bytes("media/m/original") == data
    assert list(store.list()) == ["media/m/original"]
    if isinstance(store, S3ObjectStore):
        head = store.client().head_object(Bucket=store.bucket, Key=store._key("media/m/original"))
        assert head["ContentType"] == "audio/wav"
    for missing in (store.size, store.open_seekable):
        with pytest.raises(FileNotFoundError):
            missing("nope")
    with pytest.raises(FileNotFoundError):
        store.move("nope", "elsewhere")


def test_local_multipart_stays_out_of_keys(tmp_path: Path) -> None:
    store = LocalObjectStore(root=str(tmp_path / "root"))
    upload_id = store.start_multipart("a/b")
    with pytest.raises(ValueError):
        check_key(f"{MULTIPART_DIR}/{upload_id}/key")  # no key reaches the parts
    with pytest.raises(ValueError, match="upload id"):
        store.put_part("a/b", "../../etc", 1, io.BytesIO(b"x"), 1)
    with pytest.raises(ValueError, match="not an upload of"):
        store.put_part("a/c", upload_id, 1, io.BytesIO(b"x"), 1)
    with pytest.raises(ValueError, match="held 1 bytes"):
        store.put_part("a/b", upload_id, 1, io.BytesIO(b"x"), 2)
    store.abort_multipart("a/b", upload_id)
    with pytest.raises(FileNotFoundError):
        store.put_part("a/b", upload_id, 1, io.BytesIO(b"x"), 1)


def test_a_part_put_again_replaces_the_old_one(store: ObjectStore) -> None:
    one, two, three, two_again, two_longer = _blocks(*[MIN_PART_BYTES] * 4, MIN_PART_BYTES + 1)
    upload_id = store.start_multipart("r")
    etags = [
        store.put_part("r", upload_id, n, io.BytesIO(b), len(b)) for n, b in enumerate((one, two, three), 1)
    ]
    # The same size in the middle, then another size: each time the old ETag stops being valid.
    again = store.put_part("r", upload_id, 2, io.BytesIO(two_again), len(two_again))
    with pytest.raises((ValueError, ClientError), match="InvalidPart|ETag"):
        store.complete_multipart("r", upload_id, [(1, etags[0]), (2, etags[1]), (3, etags[2])])
    longer = store.put_part("r", upload_id, 2, io.BytesIO(two_longer), len(two_longer))
    with pytest.raises((ValueError, ClientError), match="InvalidPart|ETag"):
        store.complete_multipart("r", upload_id, [(1, etags[0]), (2, again), (3, etags[2])])
    store.complete_multipart("r", upload_id, [(1, etags[0]), (2, longer), (3, etags[2])])
    assert store.get_bytes("r") == one + two_longer + three


def test_local_parts_in_order_complete_without_copying(tmp_path: Path) -> None:
    store = LocalObjectStore(root=str(tmp_path / "root"))
    first, second, extra = _blocks(MIN_PART_BYTES, 100, 50)
    upload_id = store.start_multipart("media/x")
    etag1 = store.put_part("media/x", upload_id, 1, io.BytesIO(first), len(first))
    store.put_part("media/x", upload_id, 2, io.BytesIO(extra), len(extra))
    etag2 = store.put_part("media/x", upload_id, 2, io.BytesIO(second), len(second))  # the last, rewritten
    store.put_part("media/x", upload_id, 3, io.BytesIO(extra), len(extra))  # sent, never listed
    data = tmp_path / "root" / MULTIPART_DIR / upload_id / "data"
    inode = data.stat().st_ino
    store.complete_multipart("media/x", upload_id, [(1, etag1), (2, etag2)])
    final = tmp_path / "root" / "media" / "x"
    assert final.read_bytes() == first + second
    assert final.stat().st_ino == inode  # renamed, not copied
    assert list(store.list()) == ["media/x"] and _open_uploads(store) == []
