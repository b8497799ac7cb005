"""The walkthrough (docs/walkthrough.md), run for real, so the guide cannot rot.

Its fenced blocks are replayed in order in a temporary folder: ```yaml blocks headed
`# images.yaml` write images.yaml (`# images.yaml, continued` appends to it), ```dockerfile blocks
headed `# <path>` write that file, and each `$ ` line of a ```console block is run with bash (a
trailing `\\` continues it; `NAME=value` sets a variable for the later commands) and its output
compared with the lines shown under it. In those lines `…` stands for any text, and a line that
is only `…` for any number of lines. ```sh blocks (the cluster setup) are not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO_ROOT

FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
ASSIGNMENT = re.compile(r"[A-Z_][A-Z0-9_]*=\S+")


def section() -> str:
    return (REPO_ROOT / "docs" / "walkthrough.md").read_text(encoding="utf-8")


def blocks(text: str) -> list[tuple[str, str]]:
    return [(match.group(1), match.group(2)) for match in FENCE.finditer(text)]


def console_steps(block: str) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for each `$ ` line of a console block."""
    steps: list[tuple[str, list[str]]] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        assert lines[i].startswith("$ "), f"output before any command in a console block: {lines[i]!r}"
        command = lines[i][2:]
        while command.endswith("\\"):
            i += 1
            command += "\n" + lines[i]
        i += 1
        output = []
        while i < len(lines) and not lines[i].startswith("$ "):
            output.append(lines[i])
            i += 1
        steps.append((command, output))
    return steps


def output_pattern(expected: list[str]) -> re.Pattern[str]:
    """`…` is any text within a line; a line of its own, any number of lines."""
    parts = []
    for line in expected:
        if line.strip() == "…":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(r"[^\n]*?".join(re.escape(piece) for piece in line.split("…")) + r"\n")
    return re.compile("".join(parts))


def run(command: str, cwd: Path, env: dict[str, str]) -> str:
    """Run a command as the page shows it: what it printed, stdout and stderr in order."""
    result = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert result.returncode == 0, f"$ {command}\nexit {result.returncode}\n{result.stdout}"
    return result.stdout


def write_file(root: Path, kind: str, body: str) -> None:
    """A ```yaml or ```dockerfile block: the file its first line names."""
    header, _, rest = body.partition("\n")
    if kind == "yaml":
        assert header in ("# images.yaml", "# images.yaml, continued"), header
        with (root / "images.yaml").open("a" if "continued" in header else "w", encoding="utf-8") as f:
            f.write(rest if "continued" in header else body)
    else:
        assert header.startswith("# "), header
        path = root / header.removeprefix("# ")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rest, encoding="utf-8")


def tool_env() -> dict[str, str]:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",  # stdout and stderr in the order printed
    }
    env.pop("GITHUB_TOKEN", None)
    return env


@pytest.mark.slow
def test_the_walkthrough_runs_and_prints_what_the_readme_shows(factory):
    env = tool_env()
    kinds = []
    for kind, body in blocks(section()):
        kinds.append(kind)
        if kind in ("yaml", "dockerfile"):
            write_file(factory.root, kind, body)
        elif kind == "console":
            for command, expected in console_steps(body):
                if ASSIGNMENT.fullmatch(command):
                    name, _, value = command.partition("=")
                    env[name] = value
                    continue
                printed = run(command, factory.root, env)
                assert output_pattern(expected).fullmatch(printed), (
                    f"$ {command}\nthe page shows:\n" + "\n".join(expected) + f"\nthe tool printed:\n{printed}"
                )
        else:
            assert kind == "sh", f"a ```{kind} block the test does not know how to run"
    assert kinds.count("console") >= 5 and {"yaml", "dockerfile"} <= set(kinds)


def test_the_kargo_objects_the_section_names_are_the_ones_synth_makes(factory):
    """The prose names the walkthrough's Warehouse and Stages and the soak Stage's soak time, and
    the cluster setup the file to apply: all as synth makes them."""
    text = section()
    for kind, body in blocks(text):
        if kind in ("yaml", "dockerfile"):
            write_file(factory.root, kind, body)
    for command in ("discover", "synth"):
        run(f"image-factory {command}", factory.root, tool_env())
    objects = list(yaml.safe_load_all((factory.root / "dist" / "kargo.k8s.yaml").read_text(encoding="utf-8")))
    pipeline = {o["metadata"]["name"] for o in objects if o["kind"] in ("Warehouse", "Stage")}
    named = set(re.findall(r"`([a-z0-9-]+-[0-9a-f]{8})`", text))
    assert named and named <= pipeline, f"not a Warehouse or Stage of the walkthrough's factory: {named - pipeline}"
    (soak,) = [
        o for o in objects if o["kind"] == "Stage" and o["metadata"]["labels"]["image-factory.dev/role"] == "soak"
    ]
    assert f"`{soak['metadata']['name']}`" in text  # base's delay on python; app cascades through the factory
    assert f"`requiredSoakTime: {soak['spec']['requestedFreight'][0]['sources']['requiredSoakTime']}`" in text
    setup = (REPO_ROOT / "docs" / "cluster.md").read_text(encoding="utf-8")  # the cluster, once
    applied = re.search(r"kubectl apply -f (\S+)", setup).group(1)
    assert (factory.root / applied).is_file()


def test_the_quick_start_on_the_bundled_example_warns_of_nothing(tmp_path):
    """The first line of the README runs validate, discover and synth on the bundled example: a
    newcomer's first run prints no warning (the note on what verification needs is not one)."""
    import shutil

    for name in ("images.yaml", "examples", "state", "dist"):
        source = REPO_ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    tool = [sys.executable, "-m", "image_factory"]
    for command in (["validate"], ["discover", "--full"], ["synth"]):
        done = subprocess.run([*tool, *command], cwd=tmp_path, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert "warning" not in done.stderr.lower(), (command, done.stderr)
