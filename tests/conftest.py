"""Fixtures shared by the test suite (helpers live in tests/helpers.py)."""

from tests.helpers import real_casts  # noqa: F401 - re-exported as a fixture
