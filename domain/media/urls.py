"""Where clients fetch a variant: the CDN for public media when one is configured, otherwise a
signed, expiring URL of the API (players and <img> tags cannot send bearer tokens).

The signed URL signs a media id's published folders, not one file, and carries the signature in
its path (`/api/v1/media/files/<media>/<expires>/<sig>/renditions/...`): an HLS master names its
playlists and segments by relative URLs, and those resolve under the same signature.

A link is signed either for public media (a published item's, 24 h) or for private media (1 h,
handed out only to holders of `content:read_unpublished`); the two sign different messages. A
public link is honoured only while its media is still public (the serving routes check), so an
item unpublished or archived takes its public links with it; a private link stands for its hour.

The signature is `<kid><hmac>` under the keyring's `keys.MEDIA_URL` key: the key id says which
platform secret signed it, so links handed out before a staged rotation keep working until they
expire while the old secret is in `THMNAYAH_SECRET_KEY_PREVIOUS`."""

from __future__ import annotations

import re
import time
import uuid

from domain.auth.keys import MEDIA_URL, Keyring

PUBLIC_TTL_S = 24 * 3600
PRIVATE_TTL_S = 3600
MAC_LENGTH = 40  # hex characters of the HMAC, after the 8 of the key id


def _variant_message(variant_id: uuid.UUID, expires: int, private: bool) -> str:
    return f"{'variant-private' if private else 'variant'}:{variant_id}:{expires}"


def signature(keys: Keyring, variant_id: uuid.UUID, expires: int, *, private: bool = False) -> str:
    return keys.sign(MEDIA_URL, _variant_message(variant_id, expires, private), MAC_LENGTH)


def signed_path(keys: Keyring, variant_id: uuid.UUID, *, private: bool, now: float | None = None) -> str:
    expires = int((now or time.time()) + (PRIVATE_TTL_S if private else PUBLIC_TTL_S))
    sig = signature(keys, variant_id, expires, private=private)
    return f"/api/v1/media/variants/{variant_id}/file?expires={expires}&sig={sig}"


def _refusal(good: bool, expires: int, now: float | None) -> str | None:
    if not good:
        return "the link's signature does not match"
    if expires < (now or time.time()):
        return "the link has expired; ask the API for a fresh one"
    return None


def check(
    keys: Keyring, variant_id: uuid.UUID, expires: int, sig: str, now: float | None = None
) -> str | None:
    """None when the link is good (signed public or private, by a key the ring knows), else why not.
    A public one is good only while its media is public: see `signed_private`."""
    good = any(
        keys.verify(MEDIA_URL, _variant_message(variant_id, expires, private), sig, MAC_LENGTH)
        for private in (True, False)
    )
    return _refusal(good, expires, now)


def signed_private(keys: Keyring, variant_id: uuid.UUID, expires: int, sig: str) -> bool:
    """Whether a per-variant link was signed for private media (else it needs its media public now)."""
    return keys.verify(MEDIA_URL, _variant_message(variant_id, expires, True), sig, MAC_LENGTH)


FILES_PREFIX = "/api/v1/media/files"
_PUBLISHED = re.compile(r"^(renditions|thumbnails)(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}){1,4}$")


def _files_message(media_id: uuid.UUID, expires: int, private: bool) -> str:
    return f"{'media-files-private' if private else 'media-files'}:{media_id}:{expires}"


def files_signature(keys: Keyring, media_id: uuid.UUID, expires: int, *, private: bool = False) -> str:
    return keys.sign(MEDIA_URL, _files_message(media_id, expires, private), MAC_LENGTH)


def files_base(keys: Keyring, media_id: uuid.UUID, *, private: bool, now: float | None = None) -> str:
    """The signed folder of a media id's published files (no trailing slash)."""
    expires = int((now or time.time()) + (PRIVATE_TTL_S if private else PUBLIC_TTL_S))
    return f"{FILES_PREFIX}/{media_id}/{expires}/{files_signature(keys, media_id, expires, private=private)}"


def published_key(media_id: uuid.UUID, rest: str) -> str | None:
    """The object key for the path under a signed folder, or None: only published renditions and
    thumbnails (never the original), plain names, no `..`."""
    return f"media/{media_id}/{rest}" if _PUBLISHED.match(rest) else None


def check_files(
    keys: Keyring, media_id: uuid.UUID, expires: int, sig: str, now: float | None = None
) -> str | None:
    """None when the signed folder is good (public or private), else why not; see `files_private`."""
    good = any(
        keys.verify(MEDIA_URL, _files_message(media_id, expires, private), sig, MAC_LENGTH)
        for private in (True, False)
    )
    return _refusal(good, expires, now)


def files_private(keys: Keyring, media_id: uuid.UUID, expires: int, sig: str) -> bool:
    """Whether a signed folder was signed for private media (else it needs its media public now)."""
    return keys.verify(MEDIA_URL, _files_message(media_id, expires, True), sig, MAC_LENGTH)


_CROSS_MEDIA = re.compile(r'URI="\.\./\.\./\.\./([0-9a-f-]{36})/([^"]+)"')


def sign_cross_media(playlist: str, keys: Keyring, *, private: bool, now: float | None = None) -> str:
    """A master names a dubbed track of another media by `../../../<media>/renditions/...`; under a
    signed folder that must become that media's own signed folder."""

    def swap(m: re.Match) -> str:
        return f'URI="{files_base(keys, uuid.UUID(m.group(1)), private=private, now=now)}/{m.group(2)}"'

    return _CROSS_MEDIA.sub(swap, playlist)


def variant_url(cdn_base_url: str, key: str, keys: Keyring, variant_id: uuid.UUID, *, private: bool) -> str:
    if cdn_base_url and not private:
        return f"{cdn_base_url.rstrip('/')}/{key}"
    parts = key.split("/", 2)
    try:
        media_id = uuid.UUID(parts[1]) if len(parts) == 3 and parts[0] == "media" else None
    except ValueError:
        media_id = None
    if media_id is None or published_key(media_id, parts[2]) is None:
        return signed_path(keys, variant_id, private=private)
    return f"{files_base(keys, media_id, private=private)}/{parts[2]}"
