"""The sandboxed renderer and SMS length arithmetic."""

from __future__ import annotations

import pytest

from dialogs.templates import RenderError, parse, render, sms_length


def test_render_substitutes_named_variables() -> None:
    assert (
        render("【{signature}】{name}您好", {"signature": "XX金融", "name": "张*"})
        == "【XX金融】张*您好"
    )
    assert render("{{literal}} {x}", {"x": "1"}) == "{literal} 1"


def test_unknown_variable_fails_instead_of_rendering_empty() -> None:
    with pytest.raises(RenderError, match=r"\{amount\} has no value"):
        render("待还{amount}元", {"amount_due": "1"})


@pytest.mark.parametrize(
    "text", ["{name.__class__}", "{name[0]}", "{0}", "{}", "{a b}", "x { y", "x } y"]
)
def test_no_attribute_access_or_stray_braces(text: str) -> None:
    assert parse(text).errors
    with pytest.raises(RenderError):
        render(text, {"name": "张*", "0": "x", "a b": "x"})


def test_variables_listed_once_in_order() -> None:
    assert parse("{b}{a}{b}").variables == ["b", "a"]


@pytest.mark.parametrize(
    ("chars", "segments"),
    [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)],
)
def test_ucs2_segments(chars: int, segments: int) -> None:
    length = sms_length("中" * chars)
    assert (length.encoding, length.units, length.segments) == ("ucs2", chars, segments)


def test_signature_counts_and_one_chinese_character_forces_ucs2() -> None:
    body = "a" * 65
    assert sms_length(body).encoding == "gsm7"
    signed = sms_length("【XX金融】" + body)
    assert (signed.encoding, signed.units, signed.segments) == ("ucs2", 71, 2)


@pytest.mark.parametrize(
    ("text", "units", "segments"),
    [
        ("a" * 160, 160, 1),
        ("a" * 161, 161, 2),
        ("a" * 306, 306, 2),
        ("a" * 307, 307, 3),
        ("[" * 80, 160, 1),
    ],
)
def test_gsm7_segments_and_extension_characters(text: str, units: int, segments: int) -> None:
    length = sms_length(text)
    assert (length.encoding, length.units, length.segments) == ("gsm7", units, segments)


def test_emoji_take_two_ucs2_units() -> None:
    assert sms_length("好👌").units == 3
