"""Shared pieces of the session generators: seeded RNGs, vocabularies, step builders.

Intents and tasks are infinitive phrases without literal text ("list the files with details"),
because captions read "In a terminal session to <task>, the user goes on to <intent>".
"""

from __future__ import annotations

import random

from neuralcomputer.data.terminal.session import Step, WaitFor


def session_rng(name: str, seed: int, index: int) -> random.Random:
    """The RNG of session (seed, index) of generator ``name``.

    A string seed is hashed by SHA-512 inside ``random.Random``, so it is stable across runs and
    machines (unlike ``hash()``, which is randomised per process).
    """
    return random.Random(f"{name}:{seed}:{index}")


def think(rng: random.Random, low: float = 0.4, high: float = 1.8) -> float:
    """Seconds a person looks at the screen before the next action (rounded: keeps JSON tidy)."""
    return round(rng.uniform(low, high), 2)


def run(
    rng: random.Random,
    command: str,
    intent: str,
    *,
    expect: str = "",
    wait_for: WaitFor = "prompt",
    pause: float | None = None,
    hold: float = 0.0,
) -> Step:
    """A step that types ``command`` and presses Enter."""
    return Step(
        keys=command + "\r",
        intent=intent,
        command=command,
        wait_for=wait_for,
        pause=think(rng) if pause is None else pause,
        expect=expect,
        hold=hold,
    )


def press(
    rng: random.Random, keys: str, intent: str, *, wait_for: WaitFor = "quiet", pause: float | None = None
) -> Step:
    """A step of raw keys inside a program (no shell command line), e.g. ``"jjj"`` in less."""
    return Step(keys=keys, intent=intent, command="", wait_for=wait_for,
                pause=think(rng, 0.3, 1.2) if pause is None else pause)


def pick(rng: random.Random, items: list[str] | tuple[str, ...], k: int) -> list[str]:
    """``k`` distinct items in random order."""
    return rng.sample(list(items), k)


# -- vocabularies -----------------------------------------------------------------------------

WORDS = (
    "apple", "river", "stone", "cloud", "forest", "garden", "window", "rocket", "planet", "signal",
    "bridge", "candle", "desert", "engine", "falcon", "glacier", "harbor", "island", "jungle", "kettle",
    "ladder", "marble", "needle", "orange", "pepper", "quartz", "saddle", "timber", "velvet", "walnut",
    "yellow", "zephyr", "anchor", "button", "copper", "dragon", "ember", "feather", "ginger", "hammer",
    "indigo", "jasper", "lantern", "meadow", "nectar", "oyster", "pebble", "quiver", "ribbon", "silver",
    "thunder", "umbrella", "violet", "willow", "yarrow", "basil", "cedar", "delta", "echo", "fjord",
    "granite", "horizon", "ivory", "juniper", "koala", "lemon", "mango", "nutmeg", "olive", "prairie",
)
FIRST_NAMES = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "nina", "oscar", "peggy", "quinn", "rupert", "sybil", "trent", "ursula", "victor", "wendy", "zoe",
)
CITIES = (
    "Paris", "Lagos", "Tokyo", "Lima", "Oslo", "Cairo", "Dublin", "Quito", "Seoul", "Perth",
    "Austin", "Munich", "Nairobi", "Porto", "Hanoi", "Bogota", "Zurich", "Kyoto",
)
FRUITS = ("apple", "banana", "cherry", "grape", "kiwi", "lemon", "mango", "melon", "peach", "pear", "plum")
COLORS = ("red", "green", "blue", "black", "white", "orange", "purple", "yellow", "gray", "teal")
PROJECTS = (
    "atlas", "beacon", "compass", "drift", "ember", "fable", "gizmo", "helix", "iris", "jolt",
    "kite", "lumen", "mosaic", "nova", "orbit", "pixel", "quill", "relay", "sprout", "tango",
)
DIRS = ("docs", "notes", "src", "data", "backup", "scripts", "logs", "archive", "tmp", "reports", "config")
TEXT_EXTS = (".txt", ".md", ".log", ".csv", ".conf")
SERVICES = ("auth", "billing", "search", "cart", "gateway", "mailer", "cache", "scheduler")
LEVELS = ("INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR")
HTTP_PATHS = ("/api/users", "/api/orders", "/login", "/logout", "/static/app.js", "/health", "/api/items")
HTTP_CODES = ("200", "200", "200", "201", "204", "301", "404", "500")
PHRASES = (
    "hello world", "good morning", "build passed", "all systems go", "time for coffee",
    "backup complete", "see you later", "ready to deploy", "it works", "keep it simple",
    "one step at a time", "hello from the terminal", "done for today", "tests are green",
)


def file_stem(rng: random.Random) -> str:
    """A plausible file name stem: ``notes``, ``river_2``, ``todo-list``..."""
    style = rng.random()
    word = rng.choice(WORDS)
    if style < 0.4:
        return word
    if style < 0.7:
        return f"{word}_{rng.randint(1, 9)}"
    return f"{word}-{rng.choice(WORDS)}"


def sentence(rng: random.Random, low: int = 4, high: int = 9) -> str:
    """A lowercase nonsense sentence from the word list, ending with a full stop."""
    words = [rng.choice(WORDS) for _ in range(rng.randint(low, high))]
    return " ".join(words).capitalize() + "."


def paragraph_lines(rng: random.Random, n: int) -> str:
    """``n`` lines of sentences, newline-terminated."""
    return "".join(sentence(rng) + "\n" for _ in range(n))


def log_lines(rng: random.Random, n: int) -> str:
    """A CSV-ish service log: ``2024-03-01T10:22:13,auth,INFO,GET,/login,200,123``."""
    day = rng.randint(1, 28)
    month = rng.randint(1, 12)
    seconds = rng.randint(0, 20000)
    lines = []
    for _ in range(n):
        seconds += rng.randint(1, 90)
        h, rest = divmod(seconds % 86400, 3600)
        m, s = divmod(rest, 60)
        level = rng.choice(LEVELS)
        code = rng.choice(HTTP_CODES) if level != "ERROR" else rng.choice(("500", "502", "503"))
        lines.append(
            f"2024-{month:02d}-{day:02d}T{h:02d}:{m:02d}:{s:02d},{rng.choice(SERVICES)},{level},"
            f"{rng.choice(('GET', 'GET', 'POST', 'PUT', 'DELETE'))},{rng.choice(HTTP_PATHS)},{code},"
            f"{rng.randint(3, 900)}\n"
        )
    return "".join(lines)
