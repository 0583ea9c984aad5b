"""Chat rules that need no I/O: text, names, ids, the blocklist."""

from __future__ import annotations

import pytest

from studio.chat import rules
from studio.chat.rules import ChatRefused
from studio.models import User


def code(call, *args) -> str:
    with pytest.raises(ChatRefused) as refused:
        call(*args)
    return refused.value.code


def test_text_counts_characters_not_bytes():
    assert rules.clean_text("  hello  ") == "hello"
    assert rules.clean_text("😀" * 500) == "😀" * 500  # 2,000 bytes of UTF-8
    assert code(rules.clean_text, "😀" * 501) == "too_long"
    assert rules.clean_text("line one\nline two") == "line one\nline two"
    for bad in ("", "   ", None, 5, ["x"], "a\x00b", "a\x1bb", "a\x85b", "\ud83d"):
        assert code(rules.clean_text, bad) == "invalid", repr(bad)


def test_names_and_anonymous_ids():
    assert rules.clean_name("  Ann   Lee ") == "Ann Lee"
    for bad in (None, "", "  ", "n" * 41, "a\tb\x07", 3):
        assert code(rules.clean_name, bad) == "invalid", repr(bad)
    assert rules.clean_anon("A" * 16) == "A" * 16
    for bad in ("A" * 15, "A" * 65, "has space in it..", "ünïcödé-ünïcödé-", None):
        assert code(rules.clean_anon, bad) == "invalid", repr(bad)


def test_text_direction_overrides_are_refused_but_rtl_marks_are_kept():
    """An override or isolate would reorder what is shown after it; the
    marks right-to-left writing uses are fine."""
    for control in ("\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2069"):
        assert code(rules.clean_text, f"hello {control}olleh") == "invalid", repr(control)
        assert code(rules.clean_name, f"admin{control}") == "invalid", repr(control)
    assert rules.clean_text("שלום \u200fworld\u200e") == "שלום \u200fworld\u200e"
    assert rules.clean_name("مرحبا\u200f") == "مرحبا\u200f"


def test_participant_ids_are_opaque_per_stream_and_kind():
    anon = "x" * 20
    first = rules.participant_id("secret", "stream1", user_id=None, anon=anon)
    assert first.startswith("a") and anon not in first and len(first) == 21
    assert first == rules.participant_id("secret", "stream1", user_id=None, anon=anon)
    assert first != rules.participant_id("secret", "stream2", user_id=None, anon=anon)
    assert first != rules.participant_id("other", "stream1", user_id=None, anon=anon)
    user = rules.participant_id("secret", "stream1", user_id=7, anon=None)
    assert user.startswith("u") and len(user) == len(first)
    assert rules.clean_participant(first) == first
    assert code(rules.clean_participant, "x" + first[1:]) == "invalid"


def test_blocklist_matches_whole_words_ignoring_case_and_width():
    words = rules.clean_blocklist(["Darn", " darn ", "bad  word", "🍕"])
    assert words == ["Darn", "bad word", "🍕"]
    assert rules.blocked_word("oh DARN it", words) == "Darn"
    assert rules.blocked_word("ＤＡＲＮ", words) == "Darn"
    assert rules.blocked_word("a bad word here", words) == "bad word"
    assert rules.blocked_word("I love 🍕", words) == "🍕"
    assert rules.blocked_word("darning socks, badword", words) is None
    assert rules.blocked_word("anything", []) is None
    for bad in (["x"] * 201, [""], ["x" * 51], [3], "darn", None):
        assert code(rules.clean_blocklist, bad) == "invalid", repr(bad)


def test_settings_ranges():
    assert rules.clean_mode("signed_in") == "signed_in"
    assert code(rules.clean_mode, "loud") == "invalid"
    assert rules.clean_slow_mode(0) == 0 and rules.clean_slow_mode(3600) == 3600
    for bad in (-1, 3601, 1.5, True, "5", None):
        assert code(rules.clean_slow_mode, bad) == "invalid", repr(bad)
    assert rules.clean_minutes(1) == 1
    for bad in (0, 7 * 24 * 60 + 1, False):
        assert code(rules.clean_minutes, bad) == "invalid", repr(bad)
    for bad in (0, -3, 2**31, "1", None):
        assert code(rules.clean_message_id, bad) == "invalid", repr(bad)


def test_display_name_defaults_to_the_email_local_part():
    assert rules.display_name(User(email="dana.scully@example.com")) == "dana.scully"
    assert rules.display_name(User(email="d@example.com", display_name="Dana")) == "Dana"
