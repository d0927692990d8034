from __future__ import annotations

import pytest

from qbo_client.names import escape_query_literal, normalize_for_compare, sanitize_display_name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Maple Ridge Gym", "Maple Ridge Gym"),
        ("  Maple   Ridge\tGym\n", "Maple Ridge Gym"),
        ("Phase 2: Sitework", "Phase 2 - Sitework"),
        ("A::B", "A - B"),
        (":Leading and trailing:", "Leading and trailing"),
        ("O\u2019Brien \u201cSite\u201d Services \u2013 North", 'O\'Brien "Site" Services - North'),
        ("Wait\u2026 what", "Wait... what"),
        ("Line1\r\nLine2", "Line1 Line2"),
        ("Zero\u200bWidth", "ZeroWidth"),
        ("Full\u00a0width\uff21", "Full widthA"),
        ("Jos\u00e9 Mu\u00f1oz Builders", "Jos\u00e9 Mu\u00f1oz Builders"),
    ],
)
def test_sanitize_display_name_rules(raw: str, expected: str) -> None:
    assert sanitize_display_name(raw) == expected


def test_sanitized_name_has_no_forbidden_characters() -> None:
    nasty = "a:b\tc\nd\u2018e\u2019f\u201cg\u201dh\u2013i\u2014j"
    result = sanitize_display_name(nasty)
    assert not set(result) & set(":\t\n\u2018\u2019\u201c\u201d\u2013\u2014")
    assert result.isascii()


def test_sanitize_is_deterministic_and_idempotent() -> None:
    raw = "CCS-2417 \u2013 Maple Ridge: Gym \u201cAddition\u201d"
    once = sanitize_display_name(raw)
    assert once == sanitize_display_name(raw)
    assert sanitize_display_name(once) == once


def test_trims_on_word_boundary() -> None:
    words = "Cascade County Schools Maple Ridge Gymnasium Addition Phase Two Sitework Package"
    result = sanitize_display_name(words, max_len=40)
    assert len(result) <= 40
    assert words.startswith(result)
    assert words[len(result)] == " "  # cut between words, not inside one


def test_trims_hard_when_no_space_near_the_limit() -> None:
    assert sanitize_display_name("x" * 150) == "x" * 100
    assert sanitize_display_name("ab " + "y" * 150, max_len=20) == "ab " + "y" * 17


def test_trim_does_not_leave_dangling_separator() -> None:
    result = sanitize_display_name("Alpha Beta: Gamma", max_len=12)
    assert result == "Alpha Beta"


def test_empty_after_sanitising_raises() -> None:
    with pytest.raises(ValueError):
        sanitize_display_name(" :\t\n ")


def test_escape_query_literal_escapes_backslash_before_quote() -> None:
    assert escape_query_literal("O'Brien") == "O\\'Brien"
    assert escape_query_literal("a\\b") == "a\\\\b"
    # Backslash first: a trailing backslash must not swallow the escaped quote.
    assert escape_query_literal("x\\'") == "x\\\\\\'"


def test_normalize_for_compare() -> None:
    assert normalize_for_compare("  Maple   RIDGE gym ") == "maple ridge gym"
    assert normalize_for_compare("Stra\u00dfe") == normalize_for_compare("STRASSE")
