"""The README and .env.example describe the project as it is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from domain.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("doc", ["README.md", ".env.example"])
def test_every_setting_is_documented(doc: str) -> None:
    text = (ROOT / doc).read_text()
    missing = [s.env for s in Settings.documented() if s.env not in text]
    assert missing == []


def readme_tree() -> str:
    """The fenced block under the README's "The tree" heading."""
    section = (ROOT / "README.md").read_text().split("## The tree", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1]


def test_readme_tree_matches_the_top_level_folders() -> None:
    tree = readme_tree()
    folders = sorted(
        p.name
        for p in ROOT.iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and (p / "__init__.py").exists()
        or p.name in {"dbt_project", "tests", "bench"}
    )
    described = [f for f in folders if f"\n{f}/" in tree]
    assert described == folders
    for line in tree.splitlines():
        name = line.split(" ", 1)[0].rstrip("/")
        if line and not line.startswith((" ", "`")) and name:
            assert (ROOT / name).exists(), f"the README describes {name}, which does not exist"


def test_readme_tree_lists_the_dbt_models_that_exist() -> None:
    tree = readme_tree()
    dbt_entry = tree.split("\ndbt_project/", 1)[1]
    dbt_entry = dbt_entry[: re.search(r"\n\S", dbt_entry).start()]  # up to the next folder's line
    described = set(re.findall(r"\b(?:stg|int|fct|dim)_\w+", dbt_entry))
    models = {p.stem for p in (ROOT / "dbt_project" / "models").rglob("*.sql")}
    assert described == models, (
        f"missing from the README: {sorted(models - described)}; gone: {sorted(described - models)}"
    )
    for folder in (ROOT / "dbt_project" / "models").iterdir():
        if folder.is_dir():
            assert [p.name for p in folder.glob("*models.yml")] == [f"_{folder.name}__models.yml"]


def test_readme_tree_names_every_module_and_package() -> None:
    """Each code folder's entry in the tree names every module (`name.py`) and sub-package (`name/`)
    below it, so the tree cannot fall behind a move or a split."""
    tree = readme_tree()
    entries = dict(re.findall(r"(?m)^(\w+)/\s+(.*(?:\n {2,}.*)*)", tree))
    missing = []
    for folder in ("domain", "resources", "assets", "sensors", "orchestration", "serving"):
        entry = entries[folder]
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).parts
            if "migrations" in parts[:-1] or path.name == "__init__.py":
                continue
            for package in parts[:-1]:
                if f"{package}/" not in entry:
                    missing.append(f"{folder}/{'/'.join(parts[: parts.index(package) + 1])}/")
            if not re.search(rf"(?<![\w/]){re.escape(path.name)}", entry):
                missing.append(f"{folder}/{'/'.join(parts)}")
    assert sorted(set(missing)) == []
