"""SRT publishes to SRS 5, as its callbacks describe them.

What srs5-contract.md says about SRT (recorded here because it is all there
is; no SRT callback was observed on a running SRS):
- §5.1: SRT listens on 10080/udp only with `srt_server { enabled on; }` and a
  vhost `srt { enabled on; }` (srs/srs.conf has both).
- §1.5: `ip` of an SRT client is its peer address, as for RTMP.
- §1.6: on_publish has the same keys for every protocol (tcUrl, stream,
  param, stream_url, [stream_id] after the common prefix).
- §1.7: SRT fires on_connect/on_close, on_publish/on_unpublish and
  on_play/on_stop; the `param` column for SRT is left empty: the contract
  does not say what `param` holds.
- §1.3/§1.4: an on_publish that is not `{"code":0}` refuses (the SRT
  connection is closed, as for a refused on_connect).

The bodies below are built like the recorded RTMP one (on_publish.json) for
a publisher of `srt://host:10080?streamid=#!::r=live/{id}?secret={key},m=publish`.
SRS splits that resource into app `live`, stream `{id}` and the query after
`?` (not observed: read from SRS's stream id parsing), so `param` is
`secret={key}`; some builds keep the `?`, so both forms are checked, as is a
secret passed as its own stream-id field (`#!::r=live/{id},secret=...`),
which SRS appends to the query the same way.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from studio.models import Broadcast, Stream
from tests.conftest import load_fixture

URL = "/hooks/srs?token=test-hook-token"
STREAM = "srtcam01srtcam01"
KEY = "Srt-Key_0123456789"


def srt_on_publish(param: str) -> dict:
    body = load_fixture("on_publish.json")
    body.update(
        client_id="7x2k9m1q",
        ip="198.51.100.40",
        tcUrl="srt://203.0.113.5/live",
        stream=STREAM,
        param=param,
        stream_url=f"/live/{STREAM}",
    )
    return body


@pytest.fixture()
def srt_stream(db, make_stream) -> Stream:
    stream = make_stream()
    stream.public_id = STREAM
    stream.stream_key = KEY
    db.session.commit()
    return stream


def post(client, body):
    return client.post(URL, data=json.dumps(body), content_type="application/json")


@pytest.mark.parametrize("param", [f"secret={KEY}", f"?secret={KEY}", f"m=x&secret={KEY}"])
def test_srt_publish_with_the_key_goes_live_as_srt(client, db, srt_stream, param):
    """on_publish from an SRT client with the stream's secret in `param` (with
    or without the leading `?`) is accepted and recorded as an SRT broadcast."""
    reply = post(client, srt_on_publish(param))
    assert reply.status_code == 200
    assert reply.get_json()["code"] == 0
    db.session.refresh(srt_stream)
    assert srt_stream.status == "live"
    broadcast = db.session.scalar(select(Broadcast))
    assert (broadcast.protocol, broadcast.client_id) == ("srt", "7x2k9m1q")


@pytest.mark.parametrize("param", ["secret=wrong", "?secret=wrong", "", f"secret={KEY}x"])
def test_srt_publish_with_a_wrong_key_is_refused(client, db, srt_stream, param):
    """A wrong or missing secret is refused (non-zero code); nothing changes."""
    reply = post(client, srt_on_publish(param))
    assert reply.status_code == 200
    assert reply.get_json()["code"] != 0
    db.session.refresh(srt_stream)
    assert srt_stream.status == "created"
    assert db.session.scalar(select(Broadcast)) is None


def test_srt_unpublish_ends_the_broadcast(client, db, srt_stream):
    """on_unpublish of the SRT client ends its broadcast."""
    assert post(client, srt_on_publish(f"secret={KEY}")).get_json()["code"] == 0
    unpublish = srt_on_publish(f"secret={KEY}") | {"action": "on_unpublish"}
    assert post(client, unpublish).get_json()["code"] == 0
    db.session.refresh(srt_stream)
    assert srt_stream.status == "ended"
    assert db.session.scalar(select(Broadcast.end_reason)) == "unpublish"
