"""``git`` sessions: start a repository, commit, inspect history, branch and diff.

The recorder's environment supplies the author identity (``GIT_AUTHOR_*``/``GIT_COMMITTER_*``)
and ``init.defaultBranch=main``, so these sessions work in an empty throwaway ``HOME``.
"""

from __future__ import annotations

from neuralcomputer.data.terminal.generators._common import (
    PHRASES,
    PROJECTS,
    WORDS,
    run,
    sentence,
    session_rng,
)
from neuralcomputer.data.terminal.session import SessionScript, Step

_SOURCE_TEMPLATES = (
    'def {f}(x):\n    return x * {n}\n\n\nprint({f}({m}))\n',
    'NAME = "{w}"\n\n\ndef {f}():\n    print("hello from", NAME)\n',
    'import sys\n\n\ndef {f}(args):\n    return len(args) + {n}\n\n\nprint({f}(sys.argv))\n',
)


def git(seed: int, index: int) -> SessionScript:
    """Create a repository from a small project, commit it, and explore history and branches."""
    rng = session_rng("git", seed, index)
    project = rng.choice(PROJECTS)
    module = f"{rng.choice(WORDS)}.py"
    function = f"{rng.choice(('compute', 'scale', 'greet', 'count', 'render'))}_{rng.choice(WORDS)}"
    source = rng.choice(_SOURCE_TEMPLATES).format(
        f=function, n=rng.randint(2, 9), m=rng.randint(2, 50), w=rng.choice(WORDS))
    readme = f"# {project.title()}\n\n{sentence(rng)}\n"
    world = {f"{project}/README.md": readme, f"{project}/{module}": source}
    expect = ["Initialized empty Git repository"]
    steps: list[Step] = []

    if rng.random() < 0.4:
        steps.append(run(rng, f"ls {project}", "look at the project files"))
    steps.append(run(rng, f"cd {project}", "enter the project directory"))
    steps.append(run(rng, "git init", "turn the folder into a git repository"))
    if rng.random() < 0.5:
        steps.append(run(rng, "git status", "check which files git sees"))
        expect.append("Untracked files")
    steps.append(run(rng, rng.choice(("git add .", "git add -A", f"git add README.md {module}")),
                     "stage all the files"))
    first_message = rng.choice(("Initial commit", "First commit", f"Add {project}", "Start the project"))
    steps.append(run(rng, f'git commit -m "{first_message}"', "record the first commit"))
    expect.append(first_message)

    # what happens next: (steps, expected outputs) chosen from a few realistic follow-ups
    follow_ups: list[list[Step]] = []
    phrase = rng.choice(PHRASES)
    follow_ups.append([
        run(rng, f'echo "{phrase}" >> README.md', "append a line to the readme"),
        run(rng, "git diff", "review the uncommitted change"),
    ])
    branch = f"{rng.choice(('feature', 'fix', 'docs'))}/{rng.choice(WORDS)}"
    new_file = f"{rng.choice(WORDS)}.txt"
    follow_ups.append([
        run(rng, f"git checkout -b {branch}", "start a new branch"),
        run(rng, f'echo "{rng.choice(PHRASES)}" > {new_file}', "add a new file on the branch"),
        run(rng, f"git add {new_file}", "stage the new file"),
        run(rng, f'git commit -m "Add {new_file.removesuffix(".txt")} notes"', "commit on the branch"),
        run(rng, "git branch", "list the branches"),
    ])
    follow_ups.append([run(rng, rng.choice(("git log --oneline", "git log --oneline --all", "git log -1")),
                           "look at the commit history")])
    follow_ups.append([run(rng, "git status", "check that the tree is clean")])
    # whole follow-ups only (a branch without its commit reads as an unfinished session); the
    # one-step ones always fit, so every session goes on past the first commit
    target = rng.randint(max(len(steps) + 1, 5), 8)
    order = list(range(len(follow_ups)))
    rng.shuffle(order)
    for chunk in order:
        more = follow_ups[chunk]
        if len(steps) + len(more) > target:
            continue
        if more[0].command.startswith("git checkout -b"):
            expect.append(f"Switched to a new branch '{branch}'")
        if more[0].command.startswith("echo"):
            expect.append(phrase)
        steps.extend(more)
    return SessionScript(
        generator="git", seed=seed, index=index, task="put a small project under version control with git",
        steps=steps, files=world, extra={"expect_output": expect},
    )
