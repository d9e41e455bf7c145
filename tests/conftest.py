"""Fixtures shared by the test suite (helpers live in tests/helpers.py)."""

import os

# Each pytest-xdist worker is a process, and torch starts one thread per core in each: two workers on
# two cores run four busy threads whose OpenMP waits spin against each other. A worker (and the
# processes its tests start) gets its share of the cores instead, unless OMP_NUM_THREADS says otherwise.
# Set before anything imports torch.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault("OMP_NUM_THREADS",
                          str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

from tests.helpers import real_casts  # noqa: F401 - re-exported as a fixture


def pytest_collection_modifyitems(config, items):
    """Files with the longest ``slow`` test first (a ``timeout`` marker above the default says how long:
    the overfit test, the GPU script's dry run), then those with the most ``slow`` tests (stable
    otherwise): ``make test`` runs whole files on two workers (pytest-xdist, ``--dist loadfile``) in
    this order, so a long file started last cannot leave one worker running alone at the end."""
    def file_of(item) -> str:
        return item.nodeid.split("::")[0]

    def timeout(item) -> float:
        marker = item.get_closest_marker("timeout")
        return float(marker.args[0]) if marker is not None and marker.args else 0.0

    slow: dict[str, int] = {}
    longest: dict[str, float] = {}
    for item in items:
        is_slow = item.get_closest_marker("slow") is not None
        slow[file_of(item)] = slow.get(file_of(item), 0) + is_slow
        longest[file_of(item)] = max(longest.get(file_of(item), 0.0), timeout(item) if is_slow else 0.0)
    items.sort(key=lambda item: (-longest[file_of(item)], -slow[file_of(item)]))
