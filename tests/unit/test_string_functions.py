"""`substr(s, start, length?)` and `shorten(s, n)`: the exact rule, its errors, its properties."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.language.expressions import ExpressionError, compile_expression, shorten


def evaluate(text: str, **inputs: object) -> object:
    return compile_expression(text).evaluate({"inputs": inputs})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("substr('postgres', `0`, `4`)", "post"),
        ("substr('postgres', `4`)", "gres"),
        ("substr('postgres', `6`, `10`)", "es"),  # past the end: what is there
        ("substr('postgres', `20`)", ""),
        ("substr('postgres', `2`, `0`)", ""),
        ("substr('postgres', `1.0`, `2.0`)", "os"),  # whole numbers, as JSON writes them
        ("substr('héllo', `1`, `1`)", "é"),  # characters, not bytes
        ("shorten('short', `10`)", "short"),
        ("shorten('abcdefghijklmnopqrstuvwxyz', `12`)", "abc-71c480df"),
    ],
)
def test_the_functions_compute_their_values(text: str, expected: str) -> None:
    assert evaluate(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("substr('abc', `-1`)", "substr() needs start of 0 or more, not a negative number"),
        ("substr('abc', `0`, `-2`)", "substr() needs length of 0 or more, not a negative number"),
        ("substr('abc', `0.5`)", "substr() needs a whole number for start"),
        ("substr(`3`, `0`)", "substr() expects a string, not an integer"),
        ("substr('abc', '1')", "substr() expects a number, not a string"),
        (
            "shorten('abc', `9`)",
            'shorten() needs n of at least 10: it keeps room for "-" and 8 hex',
        ),
        ("shorten('abc', `-63`)", "shorten() needs n of 0 or more, not a negative number"),
        ("shorten(inputs.missing, `63`)", "shorten() expects a string, not null"),
    ],
)
def test_bad_arguments_are_clear_errors(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate(text)
    assert message in caught.value.message
    assert caught.value.message.startswith(f"cannot evaluate {text!r}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("substr('abc')", "substr() takes 2 or 3 argument(s), got 1 at offset 0"),
        ("substr('abc', `1`, `1`, `1`)", "substr() takes 2 or 3 argument(s), got 4 at offset 0"),
        ("shorten('abc')", "shorten() takes 2 argument(s), got 1 at offset 0"),
    ],
)
def test_a_wrong_number_of_arguments_is_found_before_anything_runs(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text)
    assert caught.value.message == message


def test_shorten_ends_with_the_hash_of_the_whole_text() -> None:
    name = "team-platform-payments-postgres-primary-database-in-the-eu-west-region"
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    assert evaluate("shorten(inputs.name, `63`)", name=name) == f"{name[:54]}-{digest}"


limits = st.integers(min_value=10, max_value=80)


@given(st.text(max_size=120), limits)
def test_shorten_is_stable_and_never_longer_than_n(text: str, n: int) -> None:
    once = shorten(text, n)
    assert once == shorten(text, n)
    assert len(once) <= n
    assert (once == text) == (len(text) <= n)


@given(st.text(max_size=10), limits)
def test_shorten_keeps_what_fits(text: str, n: int) -> None:
    assert shorten(text, n) == text


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40), limits)
def test_long_texts_with_one_prefix_differ_in_their_suffix(prefix: str, tail: str, n: int) -> None:
    a, b = prefix * 80 + "a" + tail, prefix * 80 + "b" + tail  # longer than any n here
    assert a[: n - 9] == b[: n - 9]  # the kept part is the same: only the hash tells them apart
    assert shorten(a, n) != shorten(b, n)
    assert shorten(a, n)[-9] == "-" and len(shorten(a, n)) == n
