from __future__ import annotations

import pytest

from intents.numbers import parse_number


@pytest.mark.parametrize(
    ("token", "value"),
    [
        ("500", 500),
        ("1,500", 1500),
        ("1.2万", 12000),
        ("3k", 3000),
        ("5w", 50000),
        ("1千5", 1500),
        ("2万5", 25000),
        ("五百", 500),
        ("一千二", 1200),
        ("一千二百", 1200),
        ("一千零二", 1002),
        ("两千", 2000),
        ("两万五", 25000),
        ("三万五千", 35000),
        ("贰仟", 2000),
        ("伍佰", 500),
        ("十五", 15),
        ("二十", 20),
        ("一百二", 120),
        ("一五零零", 1500),
    ],
)
def test_numerals(token: str, value: float) -> None:
    assert parse_number(token) == value


@pytest.mark.parametrize("token", ["", "abc", "块"])
def test_not_numbers(token: str) -> None:
    assert parse_number(token) is None
