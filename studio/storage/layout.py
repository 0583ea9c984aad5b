"""Where every object of a stream lives in the bucket (and so on the CDN).

The live playlist has one stable name per stream across broadcasts; segments
and the replay playlist are grouped per broadcast, so a replay never changes
once written.

A private stream's objects live under `private/` instead of `live/`: the CDN
serves that prefix only to requests with a signed cookie for the stream's
folder (studio.storage.signing). Names inside a stream's folder are the
same either way, and playlists name segments relative to themselves, so a
change of visibility copies the folder as it is (workers.pipeline.visibility).
"""

from __future__ import annotations

PUBLIC_ROOT = "live"
PRIVATE_ROOT = "private"


def stream_prefix(public_id: str, private: bool = False) -> str:
    """Prefix of every object of one stream."""
    return f"{PRIVATE_ROOT if private else PUBLIC_ROOT}/{public_id}/"


def live_playlist(public_id: str, private: bool = False) -> str:
    """The live HLS playlist: stable for the stream, rewritten as segments arrive."""
    return f"{stream_prefix(public_id, private)}index.m3u8"


def segment(public_id: str, broadcast_id: int, sequence: int, private: bool = False) -> str:
    """One MPEG-TS segment of a broadcast (immutable once written)."""
    return f"{stream_prefix(public_id, private)}{broadcast_id}/{sequence}.ts"


def replay_playlist(public_id: str, broadcast_id: int, private: bool = False) -> str:
    """The VOD playlist of a finished broadcast."""
    return f"{stream_prefix(public_id, private)}{broadcast_id}/replay.m3u8"


def live_thumbnail(public_id: str, private: bool = False) -> str:
    """The stream's latest frame while live (JPEG), rewritten about every 10 s."""
    return f"{stream_prefix(public_id, private)}thumbnail.jpg"


def broadcast_thumbnail(public_id: str, broadcast_id: int, private: bool = False) -> str:
    """A broadcast's poster for its replay (JPEG), written once."""
    return f"{stream_prefix(public_id, private)}{broadcast_id}/thumbnail.jpg"


def is_private(object_name: str) -> bool:
    """Whether an object is under the signed-cookie prefix."""
    return object_name.startswith(PRIVATE_ROOT + "/")


def public_url(cdn_base: str, object_name: str) -> str:
    """The CDN URL a viewer fetches for an object."""
    return f"{cdn_base.rstrip('/')}/{object_name}"
