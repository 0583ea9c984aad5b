"""The watch page and the lists the live pages re-fetch."""

from __future__ import annotations

from studio.models import Broadcast, utcnow


def add_broadcast(db, stream, *, ended: bool, replay: bool = False) -> Broadcast:
    broadcast = Broadcast(
        stream=stream, client_id=f"c{stream.id}-{utcnow().timestamp()}", server_id="s",
        service_id="", protocol="rtmp", ended_at=utcnow() if ended else None,
        replay_ready_at=utcnow() if replay else None,
    )  # fmt: skip
    db.session.add(broadcast)
    db.session.commit()
    return broadcast


def test_watch_page_has_player_and_no_secret(client, make_stream):
    """The public watch page carries the CDN playlist, the scripts, and never the key."""
    stream = make_stream()
    html = client.get(f"/watch/{stream.public_id}").get_data(as_text=True)
    assert f"https://cdn.studio.test/live/{stream.public_id}/index.m3u8" in html
    assert "/static/vendor/hls.min.js" in html and "/static/js/watch.js" in html
    assert 'data-testid="offline-card"' in html
    assert 'data-testid="offline-card" hidden' not in html  # before going live
    assert stream.stream_key not in html
    assert "<script>" not in html  # no inline scripts


def test_replays_fragment_lists_ended_broadcasts(client, db, make_stream):
    """Ended broadcasts are listed with their replay once written, pending before;
    the live one is not listed."""
    stream = make_stream()
    ready = add_broadcast(db, stream, ended=True, replay=True)
    pending = add_broadcast(db, stream, ended=True)
    live = add_broadcast(db, stream, ended=False)
    reply = client.get(f"/watch/{stream.public_id}/replays")
    html = reply.get_data(as_text=True)
    assert reply.status_code == 200
    assert reply.headers["Cache-Control"] == "no-store"
    replay = f"https://cdn.studio.test/live/{stream.public_id}/{ready.id}/replay.m3u8"
    assert f'data-replay="{replay}"' in html
    assert f'data-broadcast="{pending.id}" data-replay-pending' in html
    assert f'data-broadcast="{live.id}"' not in html
    assert stream.stream_key not in html


def test_replays_fragment_of_unknown_stream_is_404(client, db):
    """No list for a stream that does not exist."""
    assert client.get("/watch/nosuchstream0000/replays").status_code == 404


def test_broadcast_rows_are_for_the_owner_only(client, db, auth, make_user, make_stream):
    """The creator's broadcast rows: the owner gets them, another creator a 404."""
    owner, other = make_user(), make_user()
    stream = make_stream(owner=owner)
    add_broadcast(db, stream, ended=True, replay=True)
    auth.login(other.email)
    assert client.get(f"/streams/{stream.public_id}/broadcasts").status_code == 404
    auth.logout()
    auth.login(owner.email)
    reply = client.get(f"/streams/{stream.public_id}/broadcasts")
    assert reply.status_code == 200
    assert 'data-testid="replay-link"' in reply.get_data(as_text=True)
