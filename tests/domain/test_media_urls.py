import uuid

from domain.media import urls


def test_public_media_goes_through_the_cdn_private_media_is_signed() -> None:
    vid = uuid.uuid4()
    assert urls.variant_url("https://cdn.example/", "media/x/poster.jpg", "s", vid, private=False) == (
        "https://cdn.example/media/x/poster.jpg"
    )
    signed = urls.variant_url("https://cdn.example", "media/x/poster.jpg", "s", vid, private=True)
    assert signed.startswith(f"/api/v1/media/variants/{vid}/file?expires=")
    assert urls.variant_url("", "k", "s", vid, private=False).startswith("/api/v1/media/variants/")


def test_signatures_check_secret_variant_and_expiry() -> None:
    vid = uuid.uuid4()
    sig = urls.signature("secret", vid, 2_000)
    assert urls.check("secret", vid, 2_000, sig, now=1_000) is None
    assert "expired" in urls.check("secret", vid, 2_000, sig, now=3_000)
    assert "signature" in urls.check("other", vid, 2_000, sig, now=1_000)
    assert "signature" in urls.check("secret", uuid.uuid4(), 2_000, sig, now=1_000)
    assert "signature" in urls.check("secret", vid, 2_001, sig, now=1_000)
