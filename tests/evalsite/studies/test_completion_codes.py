"""Random completion and screen-out codes are matched by eye and by script against a panel's
submissions list: no spreadsheet or pandas may read one as a number (`123456E7` was read as
1.23456e12, `12E45678` as inf, `01234567` lost its leading zero), and none may be misread
aloud (O/0, I/1/L)."""

from __future__ import annotations

import io

import pandas as pd

from evalsite.studies.completion_codes import CODE_ALPHABET, new_completion_code

DRAWS = 20_000


def _as_pandas_reads_each(codes: list[str]) -> pd.DataFrame:
    """One CSV row with each code in a column of its own: pandas infers each column's type
    from that code alone, as it would for a participants.csv of one participant."""
    return pd.read_csv(io.StringIO(",".join(codes) + "\n"), header=None)


def test_it_never_draws_a_code_that_python_reads_as_a_number():
    for code in (new_completion_code() for _ in range(DRAWS)):
        try:
            float(code)
        except ValueError:
            continue
        raise AssertionError(f"{code} reads as the number {float(code)}")


def test_it_never_draws_a_code_that_pandas_reads_as_anything_but_itself():
    codes = [new_completion_code() for _ in range(DRAWS)]
    row = _as_pandas_reads_each(codes).iloc[0]
    misread = [(c, v) for c, v in zip(codes, row) if v != c or not isinstance(v, str)]
    assert misread == []


def test_the_old_hex_codes_were_read_as_numbers():
    """What the hex codes (`secrets.token_hex(4).upper()`) did, so the check above can fail."""
    row = _as_pandas_reads_each(["123456E7", "12E45678", "01234567", "DEADBEEF"]).iloc[0]
    assert list(row) == [1.23456e12, float("inf"), 1234567, "DEADBEEF"]


def test_it_starts_every_code_with_a_letter_that_begins_no_number_nan_or_inf():
    firsts = {new_completion_code()[0] for _ in range(DRAWS)}
    assert firsts and all(c.isalpha() for c in firsts)
    assert not firsts & set("EIN")


def test_it_draws_from_an_alphabet_without_look_alike_characters():
    assert not set(CODE_ALPHABET) & set("ILOU")
    codes = [new_completion_code() for _ in range(DRAWS)]
    assert {len(c) for c in codes} == {8}
    assert set("".join(codes)) == set(CODE_ALPHABET)  # every character is used


def test_it_rarely_draws_the_same_code_twice():
    """About 6.9e11 codes (20 first letters x 32**7): 20,000 draws repeat one with chance
    ~3e-4 (n**2 / 2N), two or more practically never."""
    codes = [new_completion_code() for _ in range(DRAWS)]
    assert len(codes) - len(set(codes)) <= 1
