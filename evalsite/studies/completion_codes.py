"""Random completion and screen-out codes: read aloud, typed from the done page, and matched by a
researcher against a panel's submissions list, in a spreadsheet or with pandas.

So no reader may take one for a number. The earlier hex codes (`secrets.token_hex(4).upper()`)
did in 3.7% of draws (all eight digits, 0.625**8, or digits either side of one E, 6 * 0.625**7
/ 16): to pandas' `read_csv`, `123456E7` is the number 1.23456e12, `12E45678` is inf and
`01234567` the integer 1234567 (spreadsheets opening the CSV convert such cells too), and a match
against the panel's list failed silently. A code here starts with a letter that begins no
number, nan or inf (not E, I or N) and has no separator, so no date or time pattern either;
Crockford's base-32 alphabet leaves out I, L, O and U, read as 1, 1, 0 and V. This project's
choice, as is the length: 8 characters, as long as Prolific's own codes, about 6.9e11 codes
(20 * 32**7). Codes stored before are kept as they are; nothing checks a code's form."""

from __future__ import annotations

import secrets

# Crockford's base 32: digits and capitals without I, L, O, U
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Letters no number starts with ("E5" is not one, but a code must not read as "e" or "nan"/"inf")
FIRST_LETTERS = "".join(c for c in CODE_ALPHABET if c.isalpha() and c not in "EN")
CODE_LENGTH = 8


def new_completion_code() -> str:
    """A random code such as `K7Q4M2XA` (a screen-out code is this after `SO-`)."""
    rest = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH - 1))
    return secrets.choice(FIRST_LETTERS) + rest
