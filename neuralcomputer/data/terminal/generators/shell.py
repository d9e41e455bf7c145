"""Everyday shell sessions: ``basic`` (looking around), ``files`` (organising), ``text`` (pipelines).

Each generator builds a small world of files, then a 3-8 step session over it. Step choices are
conditioned on what the session has done so far (a directory is created before it is entered,
a file is written before it is shown), so sessions read like a person's, not like random commands.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

from neuralcomputer.data.terminal.generators._common import (
    CITIES,
    COLORS,
    DIRS,
    FIRST_NAMES,
    FRUITS,
    PHRASES,
    PROJECTS,
    WORDS,
    file_stem,
    log_lines,
    paragraph_lines,
    pick,
    run,
    sentence,
    session_rng,
)
from neuralcomputer.data.terminal.session import SessionScript, Step

# -- basic --------------------------------------------------------------------------------------


def basic(seed: int, index: int) -> SessionScript:
    """Look around a home directory: ls, cat, echo, pwd, date, whoami, uname, mkdir + cd."""
    rng = session_rng("basic", seed, index)
    notes = f"{file_stem(rng)}.txt"
    todo = rng.choice(("todo.md", "TODO.txt", "tasks.md", "plan.md"))
    project = rng.choice(PROJECTS)
    files = {
        notes: paragraph_lines(rng, rng.randint(2, 6)),
        todo: "".join(f"- {rng.choice(('buy', 'fix', 'call', 'write', 'read', 'clean'))} {rng.choice(WORDS)}\n"
                      for _ in range(rng.randint(2, 5))),
        f"{project}/README.md": f"# {project.title()}\n\n{sentence(rng)}\n",
        f"{project}/{file_stem(rng)}.py": f"print({rng.choice(PHRASES)!r})\n",
    }
    expect: list[str] = []
    state = {"in_project": False, "new_dir": ""}

    def look() -> list[Step]:
        command = rng.choice(("ls", "ls", "ls -la", "ls -l", "ls -a"))
        intent = {"ls": "list the files", "ls -la": "list all files with details",
                  "ls -l": "list the files with details", "ls -a": "list all files including hidden ones"}
        return [run(rng, command, intent[command])]

    def show_file() -> list[Step]:
        name = notes if rng.random() < 0.6 else todo
        if state["in_project"] or state["new_dir"]:
            name = f"../{name}"
        command = rng.choice(("cat", "cat", "head -n 2"))
        expect.append(files[name.removeprefix("../")].splitlines()[0])
        verb = "print a text file" if command == "cat" else "show the start of a text file"
        return [run(rng, f"{command} {name}", verb)]

    def echo() -> list[Step]:
        phrase = rng.choice(PHRASES)
        expect.append(phrase)
        return [run(rng, f'echo "{phrase}"', "print a short message")]

    def echo_to_file() -> list[Step]:
        phrase = rng.choice(PHRASES)
        name = f"{rng.choice(('message', 'note', 'greeting', 'memo'))}.txt"
        expect.append(phrase)
        return [run(rng, f'echo "{phrase}" > {name}', "write a message into a new file"),
                run(rng, f"cat {name}", "read the new file back")]

    def where() -> list[Step]:
        return [run(rng, "pwd", "show the current directory")]

    def when() -> list[Step]:
        command = rng.choice(("date", "date", "date +%Y-%m-%d", "date -u +%H:%M"))
        return [run(rng, command, "check the date and time")]

    def who() -> list[Step]:
        command = rng.choice(("whoami", "uname", "uname -s -m", "uname -a", "echo $SHELL", "id -un"))
        intent = "check the user name" if command in ("whoami", "id -un") else "check the system"
        if command == "echo $SHELL":
            intent = "check which shell is running"
            expect.append("/bin/bash")
        return [run(rng, command, intent)]

    def into_project() -> list[Step]:
        state["in_project"] = True
        return [run(rng, f"cd {project}", "enter the project directory"),
                run(rng, rng.choice(("ls", "ls -l")), "list the project files")]

    def make_dir() -> list[Step]:
        name = rng.choice(DIRS)
        state["new_dir"] = name
        steps = [run(rng, f"mkdir {name}", "create a new directory"),
                 run(rng, f"cd {name}", "move into the new directory")]
        if rng.random() < 0.5:
            steps.append(run(rng, "pwd", "confirm the current directory"))
        return steps

    def clear() -> list[Step]:
        return [run(rng, "clear", "clear the screen")]

    # (action, weight, most steps it adds): the size bound keeps sessions within 8 steps without
    # truncating one, so every expected output belongs to a step that is really typed
    actions: list[tuple[Callable[[], list[Step]], float, int]] = [
        (look, 3, 1), (show_file, 2.5, 1), (echo, 2, 1), (echo_to_file, 1, 2), (where, 1.5, 1),
        (when, 1, 1), (who, 1.5, 1), (into_project, 1, 2), (make_dir, 1, 3), (clear, 0.3, 1),
    ]
    target = rng.randint(3, 8)
    steps: list[Step] = look() if rng.random() < 0.6 else []
    used: Counter[str] = Counter()
    while len(steps) < target:
        room = target - len(steps)
        away = bool(state["in_project"] or state["new_dir"])
        available = [(a, w) for a, w, size in actions
                     if size <= room
                     and used[a.__name__] < (2 if a in (look, echo, show_file) else 1)
                     and not (a in (into_project, make_dir) and away)]
        action = rng.choices([a for a, _ in available], weights=[w for _, w in available])[0]
        used[action.__name__] += 1
        steps.extend(action())
        if (state["in_project"] or state["new_dir"]) and rng.random() < 0.3 and len(steps) < target:
            steps.append(run(rng, rng.choice(("cd ..", "cd", "cd ~")), "go back to the home directory"))
            state["in_project"] = False
            state["new_dir"] = ""
    return SessionScript(
        generator="basic", seed=seed, index=index, task="look around a home directory",
        steps=steps, files=files, extra={"expect_output": expect},
    )


# -- files --------------------------------------------------------------------------------------


def files(seed: int, index: int) -> SessionScript:
    """Organise files: mkdir/touch/cp/mv/rm/find/tree/wc/head/tail."""
    rng = session_rng("files", seed, index)
    project = rng.choice(PROJECTS)
    sub_a, sub_b, sub_c = pick(rng, DIRS, 3)
    docs = [f"{file_stem(rng)}.txt" for _ in range(rng.randint(2, 3))]
    docs = list(dict.fromkeys(docs))
    log = f"{rng.choice(('server', 'build', 'app', 'sync'))}.log"
    world = {name: paragraph_lines(rng, rng.randint(3, 12)) for name in docs}
    world[log] = log_lines(rng, rng.randint(12, 40))
    expect: list[str] = []
    steps: list[Step] = []

    if rng.random() < 0.5:
        steps.append(run(rng, rng.choice(("ls", "ls -l")), "see what files are here"))
    steps.append(run(rng, f"mkdir -p {project}/{{{sub_a},{sub_b}}}", "create a project folder with two subfolders"))
    new_file = f"{rng.choice(WORDS)}.md"
    steps.append(run(rng, f"touch {project}/{sub_a}/{new_file}", "create an empty file in the project"))
    doc = docs[0]
    if rng.random() < 0.5:
        steps.append(run(rng, f"cp {doc} {project}/{sub_b}/", "copy a document into the project"))
        copied = f"{project}/{sub_b}/{doc}"
    else:
        steps.append(run(rng, f"mv {doc} {project}/{sub_b}/", "move a document into the project"))
        copied = f"{project}/{sub_b}/{doc}"
    if rng.random() < 0.7:
        steps.append(run(rng, f"tree {project}", "show the project as a tree"))
        expect.append(new_file)
    else:
        steps.append(run(rng, f"ls -R {project}", "list the project recursively"))
        expect.append(new_file)

    extras: list[Callable[[], list[Step]]] = []

    def count_lines() -> list[Step]:
        expect.append(f"{world[log].count(chr(10))} {log}")
        return [run(rng, f"wc -l {log}", "count the lines of the log")]

    def head_tail() -> list[Step]:
        n = rng.randint(2, 5)
        if rng.random() < 0.5:
            expect.append(world[log].splitlines()[0])
            return [run(rng, f"head -n {n} {log}", "show the first lines of the log")]
        expect.append(world[log].splitlines()[-1])
        return [run(rng, f"tail -n {n} {log}", "show the last lines of the log")]

    def find_txt() -> list[Step]:
        return [run(rng, rng.choice(('find . -name "*.txt"', "find . -type f", f"find {project} -type f")),
                    "search for files by name")]

    def rename() -> list[Step]:
        new_name = f"{rng.choice(WORDS)}-{rng.randint(1, 9)}.txt"
        return [run(rng, f"mv {copied} {project}/{sub_b}/{new_name}", "rename the copied document"),
                run(rng, f"ls {project}/{sub_b}", "check the renamed file")]

    def remove() -> list[Step]:
        return [run(rng, f"rm {project}/{sub_a}/{new_file}", "delete the empty file"),
                run(rng, f"ls {project}/{sub_a}", "check that the folder is empty")]

    def add_dir() -> list[Step]:
        return [run(rng, f"mkdir {project}/{sub_c}", "add another subfolder"),
                run(rng, f"ls {project}", "list the project folders")]

    extras = [count_lines, head_tail, find_txt, rename, remove, add_dir]
    rng.shuffle(extras)
    target = rng.randint(max(len(steps), 4), 8)
    for action in extras:
        known = len(expect)
        more = action()
        if len(steps) + len(more) > target:
            del expect[known:]  # not typed, so its output will not appear
            continue
        steps.extend(more)
    return SessionScript(
        generator="files", seed=seed, index=index, task="organise files into a project folder",
        steps=steps, files=world, extra={"expect_output": expect},
    )


# -- text ---------------------------------------------------------------------------------------


def _people_csv(rng: random.Random) -> tuple[str, list[tuple[str, str, int]]]:
    names = pick(rng, FIRST_NAMES, rng.randint(6, 12))
    rows = [(name, rng.choice(CITIES), rng.randint(19, 70)) for name in names]
    return "name,city,age\n" + "".join(f"{n},{c},{a}\n" for n, c, a in rows), rows


def text(seed: int, index: int) -> SessionScript:
    """Slice text files with grep/sed/awk/sort/uniq/cut/tr and pipes."""
    rng = session_rng("text", seed, index)
    log = f"{rng.choice(('access', 'app', 'service', 'requests'))}.log"
    log_text = log_lines(rng, rng.randint(25, 70))
    people, rows = _people_csv(rng)
    word_pool = pick(rng, FRUITS + COLORS, rng.randint(5, 9))
    words = "".join(rng.choice(word_pool) + "\n" for _ in range(rng.randint(15, 35)))
    world = {log: log_text, "people.csv": people, "words.txt": words}
    log_rows = [line.split(",") for line in log_text.splitlines()]
    expect: list[str] = []

    def grep_level() -> Step:
        level = rng.choice(("ERROR", "WARN", "DEBUG"))
        if rng.random() < 0.5:
            expect.append(str(sum(row[2] == level for row in log_rows)))
            return run(rng, f"grep -c {level} {log}", "count the log lines of one severity")
        return run(rng, f"grep {level} {log} | head -n 5", "show log lines of one severity")

    def by_service() -> Step:
        expect.append(max(Counter(row[1] for row in log_rows).values()).__str__())
        return run(rng, f"cut -d, -f2 {log} | sort | uniq -c | sort -rn", "count requests per service")

    def slow_requests() -> Step:
        limit = rng.choice((300, 500, 700))
        return run(rng, f"awk -F, '$7 > {limit} {{print $1, $5, $7}}' {log} | head -n 5",
                   "find the slowest requests")

    def average_time() -> Step:
        return run(rng, f"awk -F, '{{s += $7}} END {{print s / NR}}' {log}", "compute the average response time")

    def status_codes() -> Step:
        return run(rng, f"cut -d, -f6 {log} | sort | uniq -c", "tally the status codes")

    def peek_log() -> Step:
        expect.append(log_text.splitlines()[0])
        return run(rng, f"head -n {rng.randint(3, 6)} {log}", "look at the first lines of the log")

    def sed_replace() -> Step:
        return run(rng, f"sed 's/INFO/info/' {log} | head -n 4", "lowercase a severity word in the log")

    def unique_words() -> Step:
        if rng.random() < 0.5:
            top = Counter(words.split()).most_common(1)[0][0]
            expect.append(top)
            return run(rng, "sort words.txt | uniq -c | sort -rn | head -n 3", "find the most common words")
        expect.append(sorted(set(words.split()))[0])
        return run(rng, "sort -u words.txt", "list the distinct words")

    def shout() -> Step:
        expect.append(words.split()[0].upper())
        return run(rng, "tr 'a-z' 'A-Z' < words.txt | head -n 4", "uppercase the word list")

    def oldest() -> Step:
        expect.append(max(rows, key=lambda r: r[2])[0])
        return run(rng, "sort -t, -k3 -n people.csv | tail -n 3", "sort the people by age")

    def cities() -> Step:
        return run(rng, "cut -d, -f2 people.csv | tail -n +2 | sort | uniq", "list the distinct cities")

    def people_slice() -> Step:
        expect.append(people.splitlines()[2])
        return run(rng, "sed -n '2,4p' people.csv", "print a range of lines from the table")

    def older_than() -> Step:
        age = rng.choice((30, 40, 50))
        return run(rng, f"awk -F, 'NR > 1 && $3 > {age} {{print $1}}' people.csv", "list the people above an age")

    def count_all() -> Step:
        expect.append(f"{log_text.count(chr(10))} {log}")
        return run(rng, f"wc -l {log} people.csv words.txt", "count the lines of each file")

    pool = [grep_level, by_service, slow_requests, average_time, status_codes, peek_log, sed_replace,
            unique_words, shout, oldest, cities, people_slice, older_than, count_all]
    chosen = pick(rng, [f.__name__ for f in pool], rng.randint(3, 5))
    by_name = {f.__name__: f for f in pool}
    steps: list[Step] = []
    if rng.random() < 0.4:
        steps.append(run(rng, "ls", "see which files are here"))
    steps.extend(by_name[name]() for name in chosen)
    return SessionScript(
        generator="text", seed=seed, index=index, task="analyse a log file and small tables with text tools",
        steps=steps[:8], files=world, extra={"expect_output": expect},
    )
