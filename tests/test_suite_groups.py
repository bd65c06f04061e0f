"""The folders helpers.SERIAL_TESTS names exist: a renamed one would otherwise leave its
cluster tests ungrouped, running beside each other on the two workers of `make test`."""

from __future__ import annotations

from pathlib import Path

from helpers import SERIAL_TESTS

TESTS = Path(__file__).resolve().parent


def test_every_serial_folder_exists_and_holds_tests():
    for folder in SERIAL_TESTS:
        assert list((TESTS / folder).glob("test_*.py")), folder


def test_the_serial_tests_share_one_xdist_group(request):
    marked = {
        item.path.relative_to(TESTS).parts[0]
        for item in request.session.items
        if item.get_closest_marker("xdist_group")
    }
    assert marked <= set(SERIAL_TESTS)
