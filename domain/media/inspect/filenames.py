"""The client's file name made safe to show: never used to build a path."""

from __future__ import annotations

import re
import unicodedata

_BIDI_CONTROLS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")  # can make "exe.mp4" read "mp4.exe"


_RESERVED = re.compile(r'[<>:"|?*]')


FILENAME_MAX = 120


def sanitize_filename(name: str) -> str:
    """The client's file name made safe to show and to put in Content-Disposition (the serving layer
    still encodes it, RFC 6266 `filename*`). Never used to build a path: storage keys are built from
    ids (`uploads.original_key`). Keeps letters of every script (Arabic included), NFC-normalized."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[\\/]", name)[-1]  # directories, POSIX or Windows
    name = " ".join(name.split())  # tabs, newlines and runs of spaces become one space
    name = _BIDI_CONTROLS.sub("", name)
    name = "".join(ch for ch in name if unicodedata.category(ch) != "Cc")
    name = _RESERVED.sub("_", name)
    name = name.strip().lstrip(".").strip().rstrip(". ")
    if len(name) > FILENAME_MAX:
        stem, dot, ext = name.rpartition(".")
        if dot and stem and 1 <= len(ext) <= 16 and ext.isalnum():
            name = stem[: FILENAME_MAX - len(ext) - 1].rstrip(". ") + "." + ext
        else:
            name = name[:FILENAME_MAX].rstrip(". ")
    return name or "upload"
