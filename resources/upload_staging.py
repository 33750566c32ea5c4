"""Where the API stages upload bytes until they are complete and checked (`<data_dir>/uploads`).

Embedded, the API and Dagster share the data directory. In production, mount the same volume on
the API hosts and the Dagster run workers (or pin each tus upload to one API host and run the
cleanup there)."""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg


class UploadStaging(dg.ConfigurableResource):
    root: str

    def path(self, name: str | uuid.UUID) -> Path:
        return Path(self.root) / str(uuid.UUID(str(name)))  # names are ids; anything else is refused

    def remove(self, name: str | uuid.UUID) -> bool:
        path = self.path(name)
        existed = path.exists()
        path.unlink(missing_ok=True)
        return existed
