"""Helpers for tests of browser-fed (WHIP) HLS as SRS 5 writes it."""

from __future__ import annotations


def without_audio_samples(data: bytes) -> bytes:
    """The segment with its audio packets removed, its program map untouched:
    an AAC track declared but empty ("sample rate 0"), as SRS writes the first
    segment on some WHIP publishes."""
    audio_pids = set()
    for offset in range(0, len(data), 188):
        packet = data[offset : offset + 188]
        pid = (packet[1] & 0x1F) << 8 | packet[2]
        adaptation = (packet[3] >> 4) & 0x3
        start = 4 + (1 + packet[4] if adaptation == 3 else 0)
        pes = packet[start : start + 4]
        if packet[1] & 0x40 and pes[:3] == b"\x00\x00\x01" and 0xC0 <= pes[3] <= 0xDF:
            audio_pids.add(pid)
    kept = [
        data[offset : offset + 188]
        for offset in range(0, len(data), 188)
        if (data[offset + 1] & 0x1F) << 8 | data[offset + 2] not in audio_pids
    ]
    return b"".join(kept)
