"""The command reference (docs/commands.md) lists every option each command accepts, and the
federation page (docs/federation.md) the action's inputs and outputs.

Read from the parsers and action.yml themselves, so a new option cannot land undocumented.
"""

from __future__ import annotations

import argparse
import re

import pytest
import yaml

from image_factory.cli.app import build_parser as _parser

from .conftest import REPO_ROOT

COMMANDS = (REPO_ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
FEDERATION = (REPO_ROOT / "docs" / "federation.md").read_text(encoding="utf-8")
WITHOUT_ROOT = {"bases", "digest", "open-pr", "step-summary"}  # as the section's first sentence says


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def row(command: str) -> str:
    rows = [line for line in COMMANDS.splitlines() if line.startswith(f"| `image-factory {command} ")]
    rows += [line for line in COMMANDS.splitlines() if line.startswith(f"| `image-factory {command}`")]
    assert len(rows) == 1, f"docs/commands.md has {len(rows)} rows for {command}"
    return rows[0]


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_every_option_of_every_command_is_in_its_row(command):
    options = [
        option
        for action in subcommands()[command]._actions
        for option in action.option_strings
        if option not in ("-h", "--help", "--root")
    ]
    documented = row(command)
    missing = [option for option in options if not re.search(rf"{re.escape(option)}\b", documented)]
    assert missing == [], f"{command}: {missing} not in its row of docs/commands.md"


def test_root_is_taken_by_every_command_the_readme_says():
    without = {name for name, parser in subcommands().items() if "--root" not in parser._option_string_actions}
    assert without == WITHOUT_ROOT
    sentence = COMMANDS.split("\n\n")[1]
    assert all(f"`{name}`" in sentence for name in WITHOUT_ROOT) and "`--root DIR`" in sentence


def test_every_input_and_output_of_the_action_is_documented():
    action = yaml.safe_load((REPO_ROOT / "action.yml").read_text())
    missing = [name for name in [*action["inputs"], *action["outputs"]] if f"`{name}`" not in FEDERATION]
    assert missing == []
