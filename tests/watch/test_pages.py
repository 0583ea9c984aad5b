"""The watch page and the lists the live pages re-fetch."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from html.parser import HTMLParser

from studio import viewers
from studio.models import Broadcast, Segment, utcnow


def add_broadcast(db, stream, *, ended: bool, replay: bool = False) -> Broadcast:
    broadcast = Broadcast(
        stream=stream,
        client_id=f"c{stream.id}-{utcnow().timestamp()}",
        server_id="s",
        service_id="",
        protocol="rtmp",
        ended_at=utcnow() if ended else None,
        replay_ready_at=utcnow() if replay else None,
    )
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


def _meta(html: str) -> dict[str, str]:
    """<meta property|name="..." content="..."> of a page."""
    pairs = re.findall(r'<meta (?:property|name)="([^"]+)" content="([^"]*)">', html)
    return dict(pairs)


def _go_live(db, stream, thumbnail: bool = True) -> Broadcast:
    broadcast = add_broadcast(db, stream, ended=False)
    stream.status = "live"
    stream.thumbnail_at = utcnow() if thumbnail else None
    db.session.commit()
    return broadcast


def _add_segments(db, broadcast, durations: list[float]) -> None:
    for number, duration in enumerate(durations, start=1):
        db.session.add(
            Segment(
                broadcast=broadcast,
                sequence=number,
                duration=duration,
                object_name=f"x/{broadcast.id}/{number}.ts",
            )
        )
    db.session.commit()


def test_home_page_shows_live_streams_and_recent_replays_to_visitors(client, db, make_stream):
    """/ needs no login: streams live now (title, thumbnail from the CDN, link
    to the watch page) and recent replays (thumbnail, duration, replay page);
    disabled streams are left out and no key appears."""
    live = make_stream(title="Cooking live")
    _go_live(db, live)
    replayed = make_stream(title="Yesterday's show")
    broadcast = add_broadcast(db, replayed, ended=True, replay=True)
    broadcast.thumbnail_at = utcnow()
    _add_segments(db, broadcast, [2.0] * 30 + [1.2])
    hidden = make_stream(title="Disabled one")
    _go_live(db, hidden)
    hidden.disabled = True
    db.session.commit()

    reply = client.get("/")
    html = reply.get_data(as_text=True)
    assert reply.status_code == 200
    cdn = "https://cdn.studio.test/live"
    assert "Cooking live" in html
    assert f'href="/watch/{live.public_id}"' in html
    assert f'src="{cdn}/{live.public_id}/thumbnail.jpg"' in html
    assert "Yesterday&#39;s show" in html
    assert f'href="https://studio.test/watch/{replayed.public_id}/replays/{broadcast.id}"' in html
    assert f'src="{cdn}/{replayed.public_id}/{broadcast.id}/thumbnail.jpg"' in html
    assert "1:01" in html  # 61.2 s of video
    assert "Disabled one" not in html
    for stream in (live, replayed, hidden):
        assert stream.stream_key not in html
    assert "Log in" in html  # the top bar still leads creators to their streams


def test_live_tiles_show_their_audience(client, db, redis, make_stream):
    """Each live tile says how many watch it now (the watch pages' sockets
    counted in Redis); a stream nobody watches shows no count, not 0."""
    watched, quiet = make_stream(title="Watched"), make_stream(title="Quiet")
    _go_live(db, watched)
    _go_live(db, quiet)
    now = time.time()
    redis.zadd(viewers.key(watched.public_id), {"socket-1": now, "socket-2": now, "gone": 0})

    html = client.get("/").get_data(as_text=True)
    tiles = dict(re.findall(r'<li class="tile">.*?tile-title">([^<]+)<(.*?)</li>', html, re.S))
    assert re.search(r'data-testid="tile-viewers">2 watching<', tiles["Watched"])
    assert "watching" not in tiles["Quiet"]


def test_the_most_watched_live_streams_come_first(client, db, redis, make_stream):
    """Live tiles: the largest audience first; among equal ones, the newest."""
    titles = ["Oldest, 1 watching", "Older, nobody", "Newer, 3 watching", "Newest, nobody"]
    streams = {title: make_stream(title=title) for title in titles}
    now = time.time()
    for n, (title, stream) in enumerate(streams.items()):
        _go_live(db, stream).started_at = utcnow() - timedelta(minutes=10 - n)
        db.session.commit()
        watching = int(title.split(", ")[1].split()[0]) if "watching" in title else 0
        if watching:
            redis.zadd(viewers.key(stream.public_id), {f"s{n}": now for n in range(watching)})
    html = client.get("/").get_data(as_text=True)
    shown = re.findall(r'tile-title">([^<]+)<', html.split("recent-replays")[0])
    assert shown == ["Newer, 3 watching", "Oldest, 1 watching", "Newest, nobody", "Older, nobody"]


def test_signed_in_creators_reach_their_streams_from_the_top_bar(client, auth, make_user):
    """/ is the home page for everyone; the creator's list is at /streams."""
    user = make_user()
    assert client.get("/streams").status_code == 302  # logged out: to the login form
    auth.login(user.email)
    html = client.get("/").get_data(as_text=True)
    assert 'href="/streams" data-testid="my-streams"' in html
    assert client.get("/streams").status_code == 200


def test_watch_page_has_a_link_preview_with_the_thumbnail(client, db, make_stream):
    """Open Graph and Twitter card tags: title, page URL, thumbnail on the CDN
    as the image (and the player's poster); nothing secret."""
    stream = make_stream(title="Night sky")
    _go_live(db, stream)
    html = client.get(f"/watch/{stream.public_id}").get_data(as_text=True)
    meta = _meta(html)
    image = f"https://cdn.studio.test/live/{stream.public_id}/thumbnail.jpg"
    assert meta["og:title"] == meta["twitter:title"] == "Night sky"
    assert meta["og:url"] == f"https://studio.test/watch/{stream.public_id}"
    assert meta["og:image"] == meta["twitter:image"] == image
    assert meta["twitter:card"] == "summary_large_image"
    assert meta["og:description"] == meta["twitter:description"]
    assert f'poster="{image}"' in html
    assert stream.stream_key not in html and "secret" not in html.lower()


def test_watch_page_without_a_thumbnail_has_no_image(client, db, make_stream):
    """Before the first thumbnail, no og:image (a broken preview is worse) and no poster."""
    stream = make_stream(title="New")
    html = client.get(f"/watch/{stream.public_id}").get_data(as_text=True)
    meta = _meta(html)
    assert "og:image" not in meta and meta["twitter:card"] == "summary"
    assert "poster=" not in html


def test_only_the_embed_may_be_framed(client, db, make_stream):
    """/embed/<id> may be framed by any site (CSP frame-ancestors *, no
    X-Frame-Options); the watch page, replay page and home page may not."""
    stream = make_stream()
    broadcast = add_broadcast(db, stream, ended=True, replay=True)
    embed = client.get(f"/embed/{stream.public_id}")
    assert embed.status_code == 200
    assert "X-Frame-Options" not in embed.headers
    assert "frame-ancestors *" in embed.headers["Content-Security-Policy"]
    html = embed.get_data(as_text=True)
    assert "/static/js/embed.js" in html and 'data-testid="video"' in html
    assert 'class="topbar"' not in html  # the player alone
    for path in (
        "/",
        f"/watch/{stream.public_id}",
        f"/watch/{stream.public_id}/replays/{broadcast.id}",
    ):
        reply = client.get(path)
        assert reply.headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"], path
    assert client.get("/embed/nosuchstream0000").status_code == 404


def test_replay_page_plays_that_broadcast(client, db, make_stream):
    """/watch/<id>/replays/<broadcast> carries the broadcast's VOD playlist,
    its start as a machine-readable time (shown in the viewer's zone by the
    browser), its duration and its thumbnail."""
    stream = make_stream(title="Talk")
    broadcast = add_broadcast(db, stream, ended=True, replay=True)
    broadcast.thumbnail_at = utcnow()
    _add_segments(db, broadcast, [2.0, 2.0, 1.25])
    reply = client.get(f"/watch/{stream.public_id}/replays/{broadcast.id}")
    html = reply.get_data(as_text=True)
    assert reply.status_code == 200
    base = f"https://cdn.studio.test/live/{stream.public_id}/{broadcast.id}"
    assert f'data-replay-url="{base}/replay.m3u8"' in html
    assert f'poster="{base}/thumbnail.jpg"' in html
    assert _meta(html)["og:image"] == f"{base}/thumbnail.jpg"
    assert f'<time datetime="{broadcast.started_at.isoformat()}" data-local' in html
    assert '<span data-testid="replay-duration">0:05</span>' in html
    assert "/static/js/replay.js" in html and "/static/js/localtime.js" in html
    assert stream.stream_key not in html


def test_replay_page_of_a_live_or_foreign_broadcast_is_404(client, db, make_stream):
    """A broadcast still live, of another stream, or unknown has no replay page;
    one whose replay is being written says so."""
    stream, other = make_stream(), make_stream()
    live = add_broadcast(db, stream, ended=False)
    foreign = add_broadcast(db, other, ended=True, replay=True)
    pending = add_broadcast(db, stream, ended=True)
    assert client.get(f"/watch/{stream.public_id}/replays/{live.id}").status_code == 404
    assert client.get(f"/watch/{stream.public_id}/replays/{foreign.id}").status_code == 404
    assert client.get(f"/watch/{stream.public_id}/replays/99999999").status_code == 404
    reply = client.get(f"/watch/{stream.public_id}/replays/{pending.id}")
    assert reply.status_code == 200
    assert "being prepared" in reply.get_data(as_text=True)


def test_replay_list_links_replay_pages_with_local_times(client, db, make_stream):
    """The watch page's list of past broadcasts: each replay with its page,
    its thumbnail and a <time> the browser formats in the viewer's zone."""
    stream = make_stream()
    broadcast = add_broadcast(db, stream, ended=True, replay=True)
    html = client.get(f"/watch/{stream.public_id}/replays").get_data(as_text=True)
    page = f"https://studio.test/watch/{stream.public_id}/replays/{broadcast.id}"
    assert f'href="{page}" data-testid="replay-page-link"' in html
    assert f'<time datetime="{broadcast.started_at.isoformat()}" data-local>' in html


def test_creator_page_links_replay_pages_and_offers_the_embed_code(
    client, db, auth, make_user, make_stream
):
    """The stream page's replay link opens the replay page (not a raw .m3u8),
    and the Playback card has the <iframe> code of the embeddable player."""
    owner = make_user()
    stream = make_stream(owner=owner)
    broadcast = add_broadcast(db, stream, ended=True, replay=True)
    auth.login(owner.email)
    html = client.get(f"/streams/{stream.public_id}").get_data(as_text=True)
    page = f"https://studio.test/watch/{stream.public_id}/replays/{broadcast.id}"
    assert f'<a href="{page}" data-testid="replay-link"' in html
    iframe = f"&lt;iframe src=&#34;https://studio.test/embed/{stream.public_id}&#34;"
    assert iframe in html
    assert 'data-copy="#embed-code"' in html


class _Elements(HTMLParser):
    """Each start tag's attributes, and the text inside `<code>` elements."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.code: dict[str, str] = {}
        self._code: str | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "code":
            self._code = dict(attrs).get("id")
            self.code[self._code] = ""

    def handle_endtag(self, tag):
        if tag == "code":
            self._code = None

    def handle_data(self, data):
        if self._code:
            self.code[self._code] += data


def test_the_embed_code_keeps_a_title_with_quotes_and_brackets(client, auth, make_stream):
    """Pasted into a page, the embed code is one <iframe> whose title is the
    stream's, whatever characters the title has."""
    title = "Q&A: \"live\" <b>now</b> 'here'"
    stream = make_stream(title=title)
    auth.login(stream.owner.email)
    page = _Elements(client.get(f"/streams/{stream.public_id}").get_data(as_text=True))
    pasted = _Elements(page.code["embed-code"])
    assert [tag for tag, _ in pasted.tags] == ["iframe"]
    assert pasted.tags[0][1]["title"] == title
    assert pasted.tags[0][1]["src"] == f"https://studio.test/embed/{stream.public_id}"


def test_watch_page_has_the_chat_panel(client, make_stream):
    """The chat panel is on the watch page: a labelled message box with its
    Send button, a polite live region, the 500-character count, a sign-in
    link for chats limited to members, and no inline script."""
    stream = make_stream()
    html = client.get(f"/watch/{stream.public_id}").get_data(as_text=True)
    assert 'data-testid="chat"' in html and 'data-status="created"' in html
    assert re.search(r'<label for="chat-input-[a-z0-9]+">Chat message</label>', html)
    assert ">Send</button>" in html and "Display name" in html
    assert 'aria-live="polite"' in html and "0/500" in html
    assert f'href="/login?next=/watch/{stream.public_id}"' in html
    assert "<script>" not in html


def test_replay_page_reads_the_broadcast_chat(client, db, make_stream):
    """A replay page points its chat at the broadcast's messages in the API."""
    stream = make_stream()
    broadcast = add_broadcast(db, stream, ended=True, replay=True)
    html = client.get(f"/watch/{stream.public_id}/replays/{broadcast.id}").get_data(as_text=True)
    assert f'data-url="/api/v1/streams/{stream.public_id}/chat?broadcast={broadcast.id}"' in html


def test_pages_link_the_studios_icon(client, make_stream):
    """The watch page, the embeddable player and the login page name the
    studio's icon, which is served as SVG (browsers otherwise ask for a
    /favicon.ico that does not exist)."""
    stream = make_stream()
    for path in (f"/watch/{stream.public_id}", f"/embed/{stream.public_id}", "/login"):
        page = client.get(path).get_data(as_text=True)
        icon = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', page)
        assert icon, path
        reply = client.get(icon.group(1))
        assert reply.status_code == 200 and reply.mimetype == "image/svg+xml"
        assert reply.get_data().startswith(b"<svg")
