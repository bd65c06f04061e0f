"""The xdist groups of tests/conftest.py name folders and modules that exist: a renamed one
would otherwise leave its cluster tests ungrouped, running beside each other."""

from __future__ import annotations

from pathlib import Path

from conftest import GROUPS

TESTS = Path(__file__).resolve().parent


def test_every_group_key_names_a_folder_or_module_of_the_tests():
    missing = [key for key in GROUPS if not (TESTS / key).exists()]
    assert not missing, missing
    assert set(GROUPS.values()) == {"processes-a", "processes-b"}
