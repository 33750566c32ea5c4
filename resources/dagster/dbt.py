"""The dbt project and the `dbt` resource (dbt target name = deployment name), Dagster-only.

Nothing here runs at import time. `dbt_manifest(settings)` runs `dbt parse` when the manifest is
missing or older than the project's files (a fresh clone, an edited model), so Definitions load
from a checkout with no build step; `dbt parse` renders the profile but opens no connection, so
it runs with the installed `dbt` for every target, and the process that loads Definitions never
opens the embedded warehouse. Which executable *builds* the models (the chDB launcher or the
installed `dbt`) is the deployment's choice, made in `orchestration.deployment`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
import uuid
from functools import cache
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

from domain.settings import Deployment, Settings
from resources.chdb_dbt import DATABASE_ENV

# The dbt project sits next to the Python packages at the root of the checkout.
DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
# Folders of the dbt project that hold outputs, not sources (ignored when judging staleness).
_OUTPUT_DIRS = frozenset({"target", "logs", "dbt_packages"})


@cache
def dbt_project(target: Deployment) -> DbtProject:
    """The one `DbtProject` per target; profiles.yml lives in the project directory."""
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target=target)


def installed_dbt() -> str:
    """The `dbt` installed next to this interpreter (or on PATH)."""
    installed = Path(sysconfig.get_path("scripts")) / "dbt"
    return str(installed) if installed.is_file() else "dbt"


def build_dbt_resource(target: Deployment, executable: str) -> DbtCliResource:
    return DbtCliResource(project_dir=dbt_project(target), dbt_executable=executable)


def _newest_source_mtime(project_dir: Path) -> float:
    newest = 0.0
    for root, dirs, files in os.walk(project_dir):
        if Path(root) == project_dir:
            dirs[:] = [d for d in dirs if d not in _OUTPUT_DIRS]
        for name in files:
            newest = max(newest, (Path(root) / name).stat().st_mtime)
    return newest


def manifest_is_fresh(project: DbtProject) -> bool:
    manifest = project.manifest_path
    return manifest.is_file() and manifest.stat().st_mtime >= _newest_source_mtime(project.project_dir)


def dbt_manifest(settings: Settings) -> Path:
    """The path of an up-to-date manifest.json for the deployment's target, parsing if needed."""
    project = dbt_project(settings.deployment)
    if not manifest_is_fresh(project):
        parse_manifest(project, installed_dbt(), database=settings.warehouse_database)
    return project.manifest_path


def parse_manifest(project: DbtProject, executable: str, *, database: str | None = None) -> Path:
    """Run `dbt parse` for `project` (its target) and return the manifest path; `database` is the
    warehouse database the profile names (else the profile's default).

    dbt parses into a private target directory (seeded with the partial-parse cache) and the
    results are renamed into place, so processes loading Definitions at once do not collide.
    """
    target_dir = project.project_dir / project.target_path
    scratch = target_dir / f"parse-{uuid.uuid4().hex}"
    scratch.mkdir(parents=True)
    partial = target_dir / "partial_parse.msgpack"
    try:
        if partial.is_file():
            shutil.copy2(partial, scratch / partial.name)
        command = [
            executable,
            "--quiet",
            "parse",
            "--project-dir",
            str(project.project_dir),
            "--profiles-dir",
            str(project.profiles_dir),
            *(["--target", project.target] if project.target else []),
            "--target-path",
            str(scratch),
            "--log-path",
            str(scratch),
        ]
        done = subprocess.run(
            command,
            cwd=project.project_dir,
            env={**os.environ, DATABASE_ENV: database} if database else None,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"`dbt parse` failed ({done.returncode}) for target {project.target}:\n"
                f"{done.stdout[-4000:]}{done.stderr[-4000:]}"
            )
        if (scratch / partial.name).is_file():
            (scratch / partial.name).replace(partial)
        (scratch / "manifest.json").replace(project.manifest_path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return project.manifest_path
