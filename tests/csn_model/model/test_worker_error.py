"""worker_error: the exception a DataLoader worker raised, rebuilt from torch's re-raised copy.

Each case makes the copy the way torch's loader does (torch._utils.ExceptionWrapper in the
worker, .reraise() in the main process), without starting a worker process.
"""

from __future__ import annotations

import sys
import traceback

import pytest
from torch._utils import ExceptionWrapper

from csn_model.data.errors import DataError
from csn_model.train_loop import worker_error


class TwoArgs(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a}/{b}")


def _reraised(raise_in_worker) -> BaseException:
    try:
        raise_in_worker()
    except Exception:
        wrapper = ExceptionWrapper(sys.exc_info(), where="in DataLoader worker process 0")
    with pytest.raises(BaseException) as caught:
        wrapper.reraise()
    return caught.value


def _chained():
    try:
        raise OSError("disk gone")
    except OSError as exc:
        raise DataError("Track00001: cannot read stem S01") from exc


def _two_args_while_handling_a_runtime_error():
    try:
        raise RuntimeError("inner cause")
    except RuntimeError:
        raise TwoArgs("a", "b") from None


def _two_args_during_a_runtime_error():
    try:
        raise RuntimeError("inner cause")
    except RuntimeError:
        raise TwoArgs("a", "b")  # noqa: B904 (the implicit chain is the case)


def _multiline():
    raise ValueError("line one\nValueError: looks like a header\nline three")


def test_it_rebuilds_the_last_exception_of_a_chain_with_its_message_only():
    rebuilt = worker_error(_reraised(_chained))
    assert type(rebuilt) is DataError and str(rebuilt) == "Track00001: cannot read stem S01"


def test_it_keeps_a_multiline_message_whole_even_where_a_line_looks_like_a_header():
    rebuilt = worker_error(_reraised(_multiline))
    assert type(rebuilt) is ValueError
    assert str(rebuilt) == "line one\nValueError: looks like a header\nline three"


def _key_error_with_a_note():
    try:
        {}["program_num"]
    except KeyError as exc:
        exc.add_note("Track00001/metadata.yaml, stem S01")
        raise


def _value_error_with_a_note():
    exc = ValueError("bad value")
    exc.add_note("Track00001/metadata.yaml, stem S01")
    raise exc


def test_it_rebuilds_a_key_error_with_the_key_not_its_quoted_text():
    rebuilt = worker_error(_reraised(lambda: {}["program_num"]))
    assert type(rebuilt) is KeyError and rebuilt.args == ("program_num",)


def test_it_keeps_a_key_errors_note_as_its_note_not_part_of_the_key():
    # the worker's traceback text puts a note's lines after "KeyError: 'program_num'"
    rebuilt = worker_error(_reraised(_key_error_with_a_note))
    assert type(rebuilt) is KeyError and rebuilt.args == ("program_num",)
    assert rebuilt.__notes__ == ["Track00001/metadata.yaml, stem S01"]
    shown = "".join(traceback.format_exception_only(rebuilt))
    assert shown == "KeyError: 'program_num'\nTrack00001/metadata.yaml, stem S01\n"


def test_it_shows_the_note_of_another_type_once_as_the_worker_showed_it():
    # a multiline message and a note read the same in the traceback text: the lines stay whole
    rebuilt = worker_error(_reraised(_value_error_with_a_note))
    assert type(rebuilt) is ValueError
    shown = "".join(traceback.format_exception_only(rebuilt))
    assert shown == "ValueError: bad value\nTrack00001/metadata.yaml, stem S01\n"


@pytest.mark.parametrize("case", [_two_args_while_handling_a_runtime_error,
                                  _two_args_during_a_runtime_error])  # fmt: skip
def test_it_rebuilds_nothing_when_torch_could_not_keep_the_workers_type(case):
    # torch re-raises a type it cannot build from one string as RuntimeError: a RuntimeError line
    # earlier in the traceback (a chained cause) is not the worker's exception
    reraised = _reraised(case)
    assert type(reraised) is RuntimeError
    assert worker_error(reraised) is None


def test_it_leaves_an_exception_that_is_no_workers_copy_alone():
    assert worker_error(ValueError("plain")) is None
