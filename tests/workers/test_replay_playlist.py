"""The replay playlist of a broadcast whose publisher reconnected: one VOD
playlist, a discontinuity where the timestamps jump."""

from __future__ import annotations

from workers.pipeline.playlists import PlaylistSegment, render_replay


def test_a_reconnected_broadcast_replays_with_a_discontinuity_between():
    """Segments 0-2, then the returning publisher's 3-4 (flagged: their
    timestamps start again): one ENDLIST playlist, one discontinuity."""
    segments = [PlaylistSegment(n, 2.0, 7, discontinuity=(n == 3)) for n in range(5)]
    text = render_replay(segments)
    lines = text.splitlines()
    assert lines.count("#EXT-X-DISCONTINUITY") == 1
    assert lines[lines.index("#EXT-X-DISCONTINUITY") + 2] == "3.ts"
    assert [line for line in lines if line.endswith(".ts")] == [f"{n}.ts" for n in range(5)]
    assert lines[-1] == "#EXT-X-ENDLIST"


def test_a_flag_on_the_first_segment_resets_nothing():
    """A discontinuity before the first segment is left out."""
    text = render_replay(
        [PlaylistSegment(0, 2.0, 7, discontinuity=True), PlaylistSegment(1, 2.0, 7)]
    )
    assert "#EXT-X-DISCONTINUITY" not in text
