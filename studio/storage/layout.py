"""Where every object of a stream lives in the bucket (and so on the CDN).

The live playlist has one stable name per stream across broadcasts; segments
and the replay playlist are grouped per broadcast, so a replay never changes
once written.
"""

from __future__ import annotations


def stream_prefix(public_id: str) -> str:
    """Prefix of every object of one stream."""
    return f"live/{public_id}/"


def live_playlist(public_id: str) -> str:
    """The live HLS playlist: stable for the stream, rewritten as segments arrive."""
    return f"live/{public_id}/index.m3u8"


def segment(public_id: str, broadcast_id: int, sequence: int) -> str:
    """One MPEG-TS segment of a broadcast (immutable once written)."""
    return f"live/{public_id}/{broadcast_id}/{sequence}.ts"


def replay_playlist(public_id: str, broadcast_id: int) -> str:
    """The VOD playlist of a finished broadcast."""
    return f"live/{public_id}/{broadcast_id}/replay.m3u8"


def live_thumbnail(public_id: str) -> str:
    """The stream's latest frame while live (JPEG), rewritten about every 10 s."""
    return f"live/{public_id}/thumbnail.jpg"


def broadcast_thumbnail(public_id: str, broadcast_id: int) -> str:
    """A broadcast's poster for its replay (JPEG), written once."""
    return f"live/{public_id}/{broadcast_id}/thumbnail.jpg"


def public_url(cdn_base: str, object_name: str) -> str:
    """The CDN URL a viewer fetches for an object."""
    return f"{cdn_base.rstrip('/')}/{object_name}"
