import uuid

from domain.auth.keys import Keyring
from domain.media import urls

S, SECRET, OTHER = Keyring("s"), Keyring("secret"), Keyring("other")


def test_public_media_goes_through_the_cdn_private_media_is_signed() -> None:
    vid = uuid.uuid4()
    assert urls.variant_url("https://cdn.example/", "media/x/poster.jpg", S, vid, private=False) == (
        "https://cdn.example/media/x/poster.jpg"
    )
    signed = urls.variant_url("https://cdn.example", "media/x/poster.jpg", S, vid, private=True)
    assert signed.startswith(f"/api/v1/media/variants/{vid}/file?expires=")
    assert urls.variant_url("", "k", S, vid, private=False).startswith("/api/v1/media/variants/")


def test_signatures_check_secret_variant_and_expiry() -> None:
    vid = uuid.uuid4()
    sig = urls.signature(SECRET, vid, 2_000)
    assert urls.check(SECRET, vid, 2_000, sig, now=1_000) is None
    assert "expired" in urls.check(SECRET, vid, 2_000, sig, now=3_000)
    assert "signature" in urls.check(OTHER, vid, 2_000, sig, now=1_000)
    assert "signature" in urls.check(SECRET, uuid.uuid4(), 2_000, sig, now=1_000)
    assert "signature" in urls.check(SECRET, vid, 2_001, sig, now=1_000)


def test_published_files_are_signed_by_folder_so_relative_playlist_urls_resolve() -> None:
    mid = uuid.uuid4()
    key = f"media/{mid}/renditions/abc123/master.m3u8"
    signed = urls.variant_url("", key, S, uuid.uuid4(), private=True)
    base, rest = signed.rsplit("/renditions/", 1)
    _, _, _, _, _, media, expires, sig = base.split("/")
    assert (media, rest) == (str(mid), "abc123/master.m3u8")
    assert urls.check_files(S, mid, int(expires), sig) is None
    assert "signature" in urls.check_files(S, uuid.uuid4(), int(expires), sig)
    assert "expired" in urls.check_files(S, mid, int(expires), sig, now=int(expires) + 1)


def test_only_published_folders_are_reachable_never_the_original_or_dot_dot() -> None:
    mid = uuid.uuid4()
    assert urls.published_key(mid, "renditions/abc/720p.mp4") == f"media/{mid}/renditions/abc/720p.mp4"
    assert urls.published_key(mid, "thumbnails/poster-320.jpg")
    for bad in (
        "original",
        "renditions/../original",
        "renditions/./x",
        "renditions",
        "renditions//x",
        "renditions/a b",
        "../x/renditions/y",
        "renditions/.hidden",
    ):
        assert urls.published_key(mid, bad) is None, bad


def test_a_dubbed_track_of_another_media_gets_its_own_signed_folder() -> None:
    video, dub = uuid.uuid4(), uuid.uuid4()
    master = f'#EXT-X-MEDIA:TYPE=AUDIO,URI="../../../{dub}/renditions/r1/audio.m3u8"\n720p.m3u8\n'
    signed = urls.sign_cross_media(master, S, private=True, now=1_000)
    uri = signed.split('URI="')[1].split('"')[0]
    assert uri.startswith(f"/api/v1/media/files/{dub}/") and uri.endswith("/renditions/r1/audio.m3u8")
    expires, sig = uri.split("/")[6:8]
    assert urls.check_files(S, dub, int(expires), sig, now=1_000) is None
    assert "720p.m3u8" in signed and str(video) not in signed
