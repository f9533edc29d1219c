"""The README's command examples: extracted, and each one run for real, scaled down, dry, or by composition.

Used by tests/e2e/test_dvc_repro.py in its temporary copy after `dvc repro`. `plan()` says how each command is
checked (`how`): `real` runs it as written; `scaled` runs it with a smaller size or a real file in place of a
placeholder path; `dry` runs the tool's own dry-run (make -n, pip --dry-run); `composed` composes and
validates the `-S` overrides exactly as `dvc exp run` does before training; `fixture` is `dvc repro`, which the
test ran; `help` runs `--help` only (the command trains for minutes); `setup` creates the environment the test
runs in.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`((?:python -m |dvc |make )[^`\n]*)`")
SHELL = {"bash", "sh", "shell", "console"}
PLACEHOLDER = re.compile(r"<[a-z_ -]+>")
SMALL_CUSTOMERS = 2000


@dataclass(frozen=True)
class Example:
    """One README command and how the test checks it."""

    line: int
    command: str
    how: str = "real"
    run: str | None = None  # the shell command actually run (None: nothing to run)
    overrides: tuple[str, ...] = ()  # for `composed`


def strip_comment(line: str) -> str:
    """A shell line without its trailing # comment (a # inside quotes is kept)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def commands(text: str) -> list[tuple[int, str]]:
    """(line number, command) of every shell block line (continuations joined) and inline command span."""
    found = []
    for block in FENCE.finditer(text):
        if block.group(1) not in SHELL:
            continue
        start = text[: block.start(2)].count("\n") + 1
        pending, first = "", start
        for offset, raw in enumerate(block.group(2).splitlines()):
            line = strip_comment(raw)
            if not pending:
                first = start + offset
            if line.endswith("\\"):
                pending += line[:-1].strip() + " "
                continue
            command = (pending + line.strip()).strip()
            pending = ""
            if command:
                found.append((first, command))
    for span in INLINE.finditer(text):
        command = span.group(1).strip()
        if "..." not in command and not PLACEHOLDER.search(command):  # `dvc exp run -S ...`, `<rev>`: patterns
            found.append((text[: span.start()].count("\n") + 1, command))
    seen, unique = set(), []
    for line, command in found:
        if command not in seen:
            seen.add(command)
            unique.append((line, command))
    return unique


def exp_overrides(command: str) -> tuple[str, ...]:
    """The -S/--set-param values of a `dvc exp run` command."""
    words, out = shlex.split(command), []
    for i, word in enumerate(words):
        if word in ("-S", "--set-param") and i + 1 < len(words):
            out.append(words[i + 1])
    return tuple(out)


def plan(line: int, command: str, sample_csv: Path, scratch: Path) -> Example:
    """How the test checks one README command."""
    if command.startswith("python -m venv"):
        return Example(line, command, "setup")
    if command.startswith("pip install"):
        return Example(line, command, "dry",
                       "python -m pip install --dry-run --no-deps --no-index -q -r requirements.lock")
    make = re.fullmatch(r"make (\w+)", command)  # repro/test: minutes, lock: network, params = pipelines.config
    if make:
        return Example(line, command, "dry", f"make -n {make.group(1)}")
    if command == "dvc repro":
        return Example(line, command, "fixture")
    if command.startswith("dvc exp run"):
        return Example(line, command, "composed", overrides=exp_overrides(command))
    if command.startswith("python -m pipelines.tune"):
        return Example(line, command, "help", "python -m pipelines.tune --help")
    if command.startswith("python -m pipelines.generate"):
        scaled = re.sub(r"--customers \d+", f"--customers {SMALL_CUSTOMERS}", command)
        scaled = re.sub(r"--out \S+", f"--out {scratch / 'generated'}", scaled)
        return Example(line, command, "scaled", scaled)
    if "path/to/" in command:
        return Example(line, command, "scaled", re.sub(r"path/to/\S+\.csv", str(sample_csv), command))
    return Example(line, command, "real", command)


def sweep_values(override: str) -> list[str]:
    """A Hydra sweep `key=a,b,c` as its single overrides (anything else unchanged)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([override])[0]
    if not parsed.is_sweep_override():
        return [override]
    return [f"{parsed.get_key_element()}={value}" for value in parsed.sweep_string_iterator()]
