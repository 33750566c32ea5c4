"""Object storage: a local directory (embedded) or S3 / any S3-compatible endpoint (production)."""

from __future__ import annotations

import re
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import dagster as dg
from pydantic import PrivateAttr

_KEY = re.compile(r"^[A-Za-z0-9!_.*'()\-]+(/[A-Za-z0-9!_.*'()\-]+)*$")


def check_key(key: str) -> str:
    """Object keys are built by the platform; refuse anything that could escape its prefix."""
    if not _KEY.match(key) or any(part in {".", ".."} for part in key.split("/")) or len(key) > 900:
        raise ValueError(f"invalid object key {key!r}")
    return key


class ObjectStore(dg.ConfigurableResource, ABC):
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

    def get_bytes(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()


class LocalObjectStore(ObjectStore):
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
        keys = (
            path.relative_to(root).as_posix()
            for path in root.rglob("*")
            if path.is_file() and not path.name.endswith(".partial")
        )
        # Sorted as strings (S3 lists keys in byte order), not as paths.
        yield from sorted(key for key in keys if key.startswith(prefix))

    def health(self) -> dict[str, Any]:
        root = Path(self.root)
        root.mkdir(parents=True, exist_ok=True)
        usage = shutil.disk_usage(root)
        return {"backend": "local", "root": str(root), "free_bytes": usage.free}


class S3ObjectStore(ObjectStore):
    bucket: str
    endpoint_url: str | None = None
    region_name: str = "us-east-1"
    prefix: str = ""
    create_bucket: bool = False

    _client: Any = PrivateAttr(default=None)

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
