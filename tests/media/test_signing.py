"""Cloud CDN signed cookies (studio/storage/signing.py): the format Google
documents, and every way a cookie must fail."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from studio import config as studio_config
from studio.storage import signing

KEY = signing.SigningKey("key-1", bytes(range(16)))
PREFIX = "https://cdn.example.com/private/abc/"
NOW = 1_800_000_000


def test_cookie_has_cloud_cdns_format_and_signature():
    """URLPrefix=<b64url>:Expires=<unix>:KeyName=<name>:Signature=<b64url HMAC-SHA1
    of everything before :Signature>, as Cloud CDN computes it."""
    value = signing.cookie_value(KEY, PREFIX, NOW + 60)
    policy, signature = value.split(":Signature=")
    encoded = base64.urlsafe_b64encode(PREFIX.encode()).decode()
    assert policy == f"URLPrefix={encoded}:Expires={NOW + 60}:KeyName=key-1"
    expected = hmac.new(bytes(range(16)), policy.encode(), hashlib.sha1).digest()
    assert signature == base64.urlsafe_b64encode(expected).decode()


def test_valid_cookie_grants_objects_under_its_prefix_only():
    value = signing.cookie_value(KEY, PREFIX, NOW + 60)
    assert signing.verify(value, PREFIX + "index.m3u8", [KEY], NOW)
    assert signing.verify(value, PREFIX + "7/12.ts", [KEY], NOW)
    assert not signing.verify(value, "https://cdn.example.com/private/abd/index.m3u8", [KEY], NOW)
    assert not signing.verify(value, "https://cdn.example.com/live/abc/index.m3u8", [KEY], NOW)


def test_expired_cookie_is_refused():
    value = signing.cookie_value(KEY, PREFIX, NOW)
    assert signing.verify(value, PREFIX + "index.m3u8", [KEY], NOW - 1)
    assert not signing.verify(value, PREFIX + "index.m3u8", [KEY], NOW)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda v: v.replace("Expires=", "Expires=9"),  # a later expiry
        lambda v: v.replace("KeyName=key-1", "KeyName=key-2"),  # an unknown key
        lambda v: v[:-2] + ("AA" if not v.endswith("AA") else "BB"),  # another signature
        lambda v: v.replace(
            base64.urlsafe_b64encode(PREFIX.encode()).decode(),
            base64.urlsafe_b64encode(b"https://cdn.example.com/").decode(),
        ),  # a wider prefix
        lambda v: v.split(":Signature=")[0],  # no signature
        lambda v: v + ":Extra=1",
        lambda v: "",
        lambda v: "x" * 5000,
        lambda v: v.replace("URLPrefix=", "URLPrefix=%%%"),
    ],
)
def test_tampered_cookie_is_refused(tamper):
    value = signing.cookie_value(KEY, PREFIX, NOW + 60)
    assert not signing.verify(tamper(value), PREFIX + "index.m3u8", [KEY], NOW)


def test_cookie_of_another_key_is_refused():
    other = signing.SigningKey("key-1", bytes(16))
    value = signing.cookie_value(other, PREFIX, NOW + 60)
    assert not signing.verify(value, PREFIX + "index.m3u8", [KEY], NOW)


def test_cookie_values_reads_every_cdn_cookie_of_a_header():
    value = signing.cookie_value(KEY, PREFIX, NOW + 60)
    header = f"session=abc; Cloud-CDN-Cookie={value}; Cloud-CDN-Cookie=other; x=y"
    assert signing.cookie_values(header) == [value, "other"]
    assert signing.cookie_values("") == []


@pytest.mark.parametrize("bad", ["not base64!", "c2hvcnQ=", base64.b64encode(bytes(32)).decode()])
def test_a_malformed_key_stops_start_up_without_showing_it(bad):
    with pytest.raises(studio_config.SettingsError) as error:
        studio_config.load({"STUDIO_CDN_SIGNING_KEY": bad})
    assert "STUDIO_CDN_SIGNING_KEY" in str(error.value)
    assert bad not in str(error.value)


def test_a_key_of_sixteen_bytes_is_accepted():
    key = base64.urlsafe_b64encode(bytes(range(16))).decode()
    settings = studio_config.load({"STUDIO_CDN_SIGNING_KEY": key, "STUDIO_CDN_COOKIE_TTL": "120"})
    assert studio_config.flask_config(settings)["CDN_SIGNING_KEY"] == key
    assert signing.SigningKey.from_config(
        {"CDN_SIGNING_KEY_NAME": "k", "CDN_SIGNING_KEY": key}
    ).secret == bytes(range(16))
    with pytest.raises(signing.SigningNotConfigured):
        signing.SigningKey.from_config({"CDN_SIGNING_KEY_NAME": "", "CDN_SIGNING_KEY": key})
