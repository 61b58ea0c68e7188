"""The README as a newcomer reads it: title and purpose first, then the two commands (the test
command being the one `.ci/run` runs), no reference to a file the repository does not hold, and
every verb of the command line in the command table."""

from __future__ import annotations

import re
from pathlib import Path

import click

from syncd.shell.cli import cli

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")

# A repository path: a top-level folder of the repository and what follows, or a root file.
_TOP = "|".join(re.escape(p.name) for p in sorted(ROOT.iterdir())
                if p.is_dir() and not p.name.startswith((".", "__")) and not p.name.endswith(".egg-info"))
# Not after a character that makes it part of something else: an absolute or Windows path, a URL,
# a secret reference (keyring:syncd/erp).
_PATH = re.compile(r"(?<![\w/\\.$%:@~-])"
                   rf"((?:\.ci|{_TOP})/[\w./@%<>*-]*|[\w-]+(?:\.[\w-]+)*\.(?:md|toml))(?![\w/\\])")
_PLACEHOLDER = re.compile(r"NNNN|<|>|\*|%i|TENANT|NAME|FILE")


def repository_paths(text: str) -> set[str]:
    return {m.rstrip(".") for m in _PATH.findall(text) if not _PLACEHOLDER.search(m)}


def test_title_and_purpose_come_first_then_the_two_commands():
    blocks = [b.strip() for b in README.split("\n\n")]
    assert blocks[0] == "# syncd"
    purpose = blocks[1]
    assert not purpose.startswith(("#", "```", "|")) and "middleware" in purpose and len(purpose) > 200
    commands = blocks[2]
    assert commands.startswith("```sh\n") and commands.endswith("```")
    install, test = commands.splitlines()[1:3]
    assert install.endswith("syncd demo") and "pip install ." in install
    assert "pytest" in test and "'.[test]'" in test


def test_ci_runs_the_readmes_test_command():
    test_line = README.split("```sh\n", 1)[1].splitlines()[1]
    command = test_line.split("&&")[-1].strip()  # .venv/bin/python -m pytest -q
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert 'PATH="$PWD/.venv/bin:$PATH"' in ci
    assert command.removeprefix(".venv/bin/") in ci.splitlines(), "`.ci/run` must run the README's tests"


def test_the_path_finder_finds_paths():
    found = repository_paths("see `docs/ARCHITECTURE.md`, config.example.toml and keyring:syncd/erp, "
                             "/etc/syncd/config.toml, C:\\ProgramData\\syncd\\config.toml, nope/x, "
                             "`syncd/state/migrations/versions/NNNN_<name>.py`")
    assert found == {"docs/ARCHITECTURE.md", "config.example.toml"}


def test_every_file_the_readme_names_is_in_the_repository():
    paths = repository_paths(README)
    assert {"docs/ARCHITECTURE.md", "config.example.toml", "systemd/syncd.service", ".ci/run"} <= paths
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"README.md names files the repository does not hold: {missing}"


def _verbs(group: click.Group, prefix: str = "syncd") -> list[str]:
    out = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            out += _verbs(command, f"{prefix} {name}")
        else:
            out.append(f"{prefix} {name}")
    return out


def test_the_command_table_lists_every_verb_and_the_new_options():
    table = README[README.index("## Commands"):README.index("### Exit codes")]
    rows = [line for line in table.splitlines() if line.startswith("| `syncd")]
    text = "\n".join(rows).replace("\\|", "|")
    for verb in _verbs(cli):
        group, _, leaf = verb.rpartition(" ")
        found = re.search(rf"{re.escape(group)} [^`]*\b{re.escape(leaf)}\b", text)
        assert found, f"{verb} is not in the table"
    for needle in ("syncd retry ADDRESS... | --failed", "syncd history ADDRESS", "--format table|json",
                   "syncd accounts list [--format table|csv|json] [--lang de|en]"):
        assert needle in text, needle
