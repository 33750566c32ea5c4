"""The object store and the API hosts' upload staging as Dagster resources."""

from __future__ import annotations

import dagster as dg

from resources.object_store import LocalObjectStore, S3ObjectStore
from resources.upload_staging import UploadStaging


class LocalObjectStoreResource(dg.ConfigurableResource):
    """Object storage in a local directory (embedded): uploads, media variants, the event lake,
    reports."""

    root: str

    def create_resource(self, context: dg.InitResourceContext) -> LocalObjectStore:
        return LocalObjectStore(root=self.root)


class S3ObjectStoreResource(dg.ConfigurableResource):
    """Object storage in an S3 bucket or any S3-compatible endpoint (production); credentials come
    from boto3's usual chain (environment, profile, instance role)."""

    bucket: str
    endpoint_url: str | None = None
    region_name: str = "us-east-1"
    prefix: str = ""
    create_bucket: bool = False

    def create_resource(self, context: dg.InitResourceContext) -> S3ObjectStore:
        return S3ObjectStore(
            bucket=self.bucket,
            endpoint_url=self.endpoint_url,
            region_name=self.region_name,
            prefix=self.prefix,
            create_bucket=self.create_bucket,
        )


class UploadStagingResource(dg.ConfigurableResource):
    """The folder where the API host keeps uploads in flight (swept by the housekeeping job)."""

    root: str

    def create_resource(self, context: dg.InitResourceContext) -> UploadStaging:
        return UploadStaging(root=self.root)
