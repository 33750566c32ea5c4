"""Helpers of the account tests."""

from __future__ import annotations

from pathlib import Path

from domain.settings import Settings


def smtp_settings(data_dir: Path, database_url: str, port: int) -> Settings:
    """An embedded deployment whose mail goes to an SMTP server on 127.0.0.1:`port` (no STARTTLS),
    its emailed links on https://media.example."""
    return Settings(
        deployment="local",
        data_dir=data_dir,
        database_url=database_url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=False,
        public_base_url="https://media.example",
    )
