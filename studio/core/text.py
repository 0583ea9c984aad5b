"""What may be in a short text people show each other: a stream's title, a
chat name or message. No Flask, no database."""

from __future__ import annotations

import re

# Control characters other than newline and tab (C0, DEL, C1).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Bidirectional embeddings, overrides and isolates: one in a title, a name or
# a message would reorder what is shown after it ("Trojan Source" spoofing).
# The plain marks (U+200E, U+200F) that right-to-left writing needs stay allowed.
_DIRECTION_CONTROL = re.compile("[\u202a-\u202e\u2066-\u2069]")


def unprintable(value: str, *, lines: bool = True) -> str | None:
    """Why `value` cannot be shown as written ("control characters", "text
    direction overrides", "invalid Unicode"), or None. `lines`: newlines and
    tabs are allowed (a message), else refused too (a title)."""
    if _CONTROL.search(value) or (not lines and ("\n" in value or "\t" in value)):
        return "control characters"
    if _DIRECTION_CONTROL.search(value):
        return "text direction overrides"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        return "invalid Unicode"
    return None
