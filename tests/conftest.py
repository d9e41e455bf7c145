"""Fixtures shared by the test suite (helpers live in tests/helpers.py)."""

from tests.helpers import real_casts  # noqa: F401 - re-exported as a fixture


def pytest_collection_modifyitems(config, items):
    """Files with the most ``slow`` tests first (stable otherwise): ``make test`` runs whole files on two
    workers (pytest-xdist, ``--dist loadfile``) in this order, so a long file started last cannot leave
    one worker running alone at the end."""
    def file_of(item) -> str:
        return item.nodeid.split("::")[0]

    slow: dict[str, int] = {}
    for item in items:
        slow[file_of(item)] = slow.get(file_of(item), 0) + (item.get_closest_marker("slow") is not None)
    items.sort(key=lambda item: -slow[file_of(item)])
