"""SrsWhipDouble: a TEST DOUBLE standing in for SRS 5's WHIP and WHEP
endpoints, which cannot run on this machine. Built on aiortc, it behaves like SRS 5.0.216 as
srs5-contract.md §4.1 describes it:

- `POST /rtc/v1/whip/?app=..&stream=..&secret=..` with an SDP offer: calls
  the studio's `/hooks/srs` on_publish with the WHIP body shape
  (tests/fixtures/srs5/on_publish_whip.json: `param` is the raw query without
  `?`, `tcUrl` is empty) before ICE; a refused hook closes the connection
  without any reply; otherwise HTTP 201, `application/sdp` answer and
  `Location: /rtc/v1/whip/?action=delete&token=..&app=..&stream=..&session=..`.
- `DELETE <Location>`: ends the session, calls on_unpublish, answers 200.
- Answers CORS like SRS's `http_api.crossdomain` (the test page is on another
  origin; in production nginx serves WHIP on the studio's own origin).

- `POST /rtc/v1/whep/?app=..&stream=..` (§4.2, playback): calls on_play
  (a refusal closes the connection without a reply), answers 201 with H.264
  video and Opus audio and sends them from a file (`media`: a Matroska
  file, decoded and re-encoded by aiortc as SRS's RTMP-to-RTC bridge would
  send them). `whep_mode` makes it fail as a test needs: "error" answers
  HTTP 500, "silent" answers and connects but never sends a frame,
  "unreachable" answers with a candidate nobody answers on (ICE fails).

It records what a test wants to check: the offers, the negotiated video
codec, decoded frames per kind, DELETEs, the WHEP sessions. With `unreachable=True` the answer
carries a single candidate nobody answers on (a silent loopback UDP port),
so ICE cannot connect.

Only loopback is used: aioice's host address discovery is limited to
127.0.0.1 while the double runs.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import socket
import string
import threading
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import aioice.ice
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError

from devtools.process import free_port

ALPHABET = string.ascii_lowercase + string.digits


def first_video_codec(sdp: str) -> str:
    """Codec name of the first payload type on the SDP's video m-line."""
    match = re.search(r"^m=video \d+ \S+ (\d+)", sdp, re.MULTILINE)
    if not match:
        return ""
    rtpmap = re.search(rf"^a=rtpmap:{match.group(1)} ([^/\s]+)", sdp, re.MULTILINE)
    return rtpmap.group(1) if rtpmap else ""


@dataclass
class Session:
    token: str
    stream: str
    param: str
    client_id: str
    pc: RTCPeerConnection
    offer: str
    answer: str = ""
    frames: dict[str, int] = field(default_factory=lambda: {"video": 0, "audio": 0})
    deleted: bool = False
    action: str = "publish"  # or "play" (WHEP)


class SilentTrack(MediaStreamTrack):
    """A track that is negotiated and sent but never yields a frame."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    async def recv(self):
        await asyncio.Event().wait()  # until the connection closes


class SrsWhipDouble:
    """Test double for SRS 5's WHIP endpoint (see the module docstring)."""

    def __init__(self, hook_url: str = "", *, unreachable: bool = False, media: str = ""):
        self.hook_url = hook_url  # the studio's /hooks/srs?token=...
        self.unreachable = unreachable
        self.media = media  # what WHEP viewers get: a file with H.264 and audio
        self.media_options: dict[str, str] = {}  # ffmpeg options opening it
        # "ok", "error" (HTTP 500), "silent" (no frames), "unreachable" (no ICE)
        self.whep_mode = "ok"
        self.sessions: list[Session] = []
        self.deletes: list[str] = []
        self.hook_replies: list[dict] = []
        self.server_id = "vid-dbl" + secrets.choice(ALPHABET)
        self.service_id = "".join(secrets.choice(ALPHABET) for _ in range(8))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.whip_url = f"{self.url}/rtc/v1/whip/"
        self.whep_url = f"{self.url}/rtc/v1/whep/"
        self._silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._silent.bind(("127.0.0.1", 0))  # a candidate that never answers
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._http = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        self._http_thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._original_addresses = aioice.ice.get_host_addresses

    # --- lifecycle --------------------------------------------------------------

    def start(self) -> SrsWhipDouble:
        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
        self._loop_thread.start()
        self._http_thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        for session in self.sessions:
            self._run(session.pc.close())
        self._run(self._cancel_tasks())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join(5)
        self._silent.close()
        aioice.ice.get_host_addresses = self._original_addresses

    @staticmethod
    async def _cancel_tasks() -> None:
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __enter__(self) -> SrsWhipDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, coroutine, timeout: float = 15.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    # --- what SRS does ----------------------------------------------------------

    def _hook(self, action: str, session: Session) -> bool:
        """Call the studio like SRS's http_hooks: JSON POST, accepted on code 0."""
        body = {
            "server_id": self.server_id,
            "service_id": self.service_id,
            "action": action,
            "client_id": session.client_id,
            "ip": "127.0.0.1",
            "vhost": "__defaultVhost__",
            "app": "live",
            "tcUrl": "",
            "stream": session.stream,
            "param": session.param,
            **({"pageUrl": ""} if action == "on_play" else {}),
            "stream_url": f"/live/{session.stream}",
            "stream_id": "vid-" + session.token[:7],
        }
        request = urllib.request.Request(  # noqa: S310 (the studio on loopback)
            self.hook_url, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310
                answer = json.loads(reply.read() or b"{}")
        except (OSError, ValueError):
            answer = {"code": -1}
        self.hook_replies.append({"action": action, **answer})
        return answer.get("code") == 0

    async def _answer(self, session: Session) -> str:
        pc = session.pc

        @pc.on("track")
        def on_track(track):
            asyncio.ensure_future(self._consume(session, track))

        await pc.setRemoteDescription(RTCSessionDescription(session.offer, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        answer = pc.localDescription.sdp
        if self.unreachable:
            # Closed before its ICE task runs: no checks from our side either,
            # so the browser cannot find a peer-reflexive way in.
            await pc.close()
            answer = self._with_silent_candidate(answer)
        return answer

    async def _consume(self, session: Session, track) -> None:
        while True:
            try:
                await track.recv()  # decoded by aiortc (H.264 through PyAV)
            except MediaStreamError:
                return
            session.frames[track.kind] = session.frames.get(track.kind, 0) + 1

    def _with_silent_candidate(self, sdp: str) -> str:
        port = self._silent.getsockname()[1]
        lines = [line for line in sdp.splitlines() if not line.startswith("a=candidate:")]
        out = []
        for line in lines:
            out.append(line)
            if line.startswith("a=mid:"):
                out.append(f"a=candidate:1 1 udp 2130706431 127.0.0.1 {port} typ host")
        return "\r\n".join(out) + "\r\n"

    async def _answer_play(self, session: Session) -> str:
        """Send H.264 + Opus (SRS answers nothing else, §4.6), or silence."""
        pc = session.pc
        await pc.setRemoteDescription(RTCSessionDescription(session.offer, "offer"))
        if self.whep_mode in ("silent", "unreachable"):
            tracks = [SilentTrack("video"), SilentTrack("audio")]
        else:
            player = MediaPlayer(self.media, options=self.media_options or None)
            tracks = [track for track in (player.video, player.audio) if track]
        for track in tracks:
            pc.addTrack(track)
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "video":
                codecs = RTCRtpSender.getCapabilities("video").codecs
                transceiver.setCodecPreferences([c for c in codecs if c.name == "H264"])
        await pc.setLocalDescription(await pc.createAnswer())
        if self.whep_mode == "unreachable":
            await pc.close()  # as for WHIP: ICE cannot connect
            return self._with_silent_candidate(pc.localDescription.sdp)
        return pc.localDescription.sdp

    def play(self, query: str, offer: str) -> tuple[int, dict, bytes] | None:
        """Handle a WHEP POST (SRS: the WHIP handler with action=play)."""
        if self.whep_mode == "error":
            return 500, {"Content-Type": "text/plain"}, b"internal error"
        return self.publish(query, offer, action="play")

    def publish(
        self, query: str, offer: str, action: str = "publish"
    ) -> tuple[int, dict, bytes] | None:
        """Handle a WHIP POST; None means: close without a reply (SRS 5)."""
        args = parse_qs(query)
        stream = args.get("stream", ["livestream"])[0]
        token = "".join(secrets.choice(ALPHABET) for _ in range(9))
        session = Session(
            token=token,
            stream=stream,
            param=query,
            offer=offer,
            client_id="".join(secrets.choice(ALPHABET) for _ in range(8)),
            pc=None,  # type: ignore[arg-type]  (created on the loop below)
            action=action,
        )
        session.pc = self._run(self._new_pc())
        self.sessions.append(session)
        if not self._hook(f"on_{action}", session):
            self._run(session.pc.close())
            return None
        answering = self._answer_play if action == "play" else self._answer
        session.answer = self._run(answering(session))
        ufrag = re.search(r"^a=ice-ufrag:(\S+)", session.answer, re.MULTILINE)
        remote = re.search(r"^a=ice-ufrag:(\S+)", offer, re.MULTILINE)
        location = (
            f"/rtc/v1/whip/?action=delete&token={token}&app=live&stream={stream}"
            f"&session={ufrag.group(1) if ufrag else ''}:{remote.group(1) if remote else ''}"
        )
        headers = {"Content-Type": "application/sdp", "Location": location, "Connection": "Close"}
        return 201, headers, session.answer.encode()

    async def _new_pc(self) -> RTCPeerConnection:
        # No ICE servers: aiortc's default is a public STUN server.
        return RTCPeerConnection(RTCConfiguration(iceServers=[]))

    def delete(self, query: str) -> int:
        token = parse_qs(query).get("token", [""])[0]
        session = next((s for s in self.sessions if s.token == token and not s.deleted), None)
        if session is None:
            return 404  # SRS: error, no session
        session.deleted = True
        self.deletes.append(token)
        self._run(session.pc.close())
        self._hook("on_stop" if session.action == "play" else "on_unpublish", session)
        return 200

    def kick(self, session: Session) -> None:
        """Drop a publisher (or player) the way `DELETE /api/v1/clients/{cid}`
        does on SRS: the session ends (DTLS close) and on_unpublish (on_stop) follows."""
        session.deleted = True
        self._run(session.pc.close())
        self._hook("on_stop" if session.action == "play" else "on_unpublish", session)

    # --- HTTP -------------------------------------------------------------------

    def _handler_class(self):
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def _cors(self) -> None:
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
                self.send_header("Access-Control-Allow-Headers", "Content-Type")
                self.send_header("Access-Control-Expose-Headers", "Location")

            def do_OPTIONS(self) -> None:
                self.send_response(200)
                self._cors()
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                offer = self.rfile.read(length).decode()
                reply = None
                if parts.path == "/rtc/v1/whip/":
                    reply = double.publish(parts.query, offer)
                elif parts.path == "/rtc/v1/whep/":
                    reply = double.play(parts.query, offer)
                if reply is None:
                    self.close_connection = True  # SRS 5: no reply at all
                    return
                status, headers, body = reply
                self.send_response(status)
                self._cors()
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def do_DELETE(self) -> None:
                status = double.delete(urlsplit(self.path).query)
                self.send_response(status)
                self._cors()
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler

    # --- what tests read ----------------------------------------------------------

    def frames(self, kind: str = "video") -> int:
        return sum(session.frames.get(kind, 0) for session in self.sessions)

    @property
    def players(self) -> list[Session]:
        """The WHEP (playback) sessions, oldest first."""
        return [session for session in self.sessions if session.action == "play"]

    @property
    def offers(self) -> list[str]:
        return [session.offer for session in self.sessions]
