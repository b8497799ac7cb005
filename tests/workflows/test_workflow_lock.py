"""The workflows install Python packages from requirements/workflows.lock only: a hashed lock that covers
pyproject.toml's dependencies (and its build backend), every requirement pinned with == and hashed, and
every `pip install` in .github/workflows/ and action.yml either `--require-hashes -r …/workflows.lock` or
`--no-deps --no-build-isolation <the factory's own code>`, with no token in pip's environment."""

from __future__ import annotations

import re
import shlex
import tomllib

import pytest
import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..conftest import REPO_ROOT

LOCK = REPO_ROOT / "requirements" / "workflows.lock"
LOCK_PATH = "requirements/workflows.lock"
WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
ACTION = REPO_ROOT / "action.yml"
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})$")
PIP_INSTALL = re.compile(r"(?:\bpip3?\"?|-m\s+pip)\s+install\b(.*)")


def lock_entries(text: str) -> dict[str, tuple[Requirement, list[str]]]:
    """The lock's requirements: canonical name → (requirement, its sha256 hashes). Raises ValueError
    on anything that is not a `name==version [; marker]` line with only --hash options."""
    entries: dict[str, tuple[Requirement, list[str]]] = {}
    logical = re.sub(r"\\\n", " ", text)
    for number, line in enumerate(logical.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        options = [word for word in words if word.startswith("-")]
        spec = " ".join(word for word in words if not word.startswith("-"))
        if not options or not all(HASH.match(option) for option in options):
            raise ValueError(f"line {number}: every requirement needs --hash=sha256:… and nothing else: {line}")
        try:
            requirement = Requirement(spec)
        except InvalidRequirement as error:
            raise ValueError(f"line {number}: {error}") from None
        specifiers = list(requirement.specifier)
        if requirement.url or len(specifiers) != 1 or specifiers[0].operator != "==" or "*" in specifiers[0].version:
            raise ValueError(f"line {number}: not pinned with ==: {spec}")
        name = canonicalize_name(requirement.name)
        if name in entries:
            raise ValueError(f"line {number}: {name} is pinned twice")
        entries[name] = (requirement, [HASH.match(option).group(1) for option in options])
    return entries


def pinned_version(requirement: Requirement) -> str:
    (specifier,) = requirement.specifier
    return specifier.version


def uncovered(dependencies: list[str], entries: dict[str, tuple[Requirement, list[str]]]) -> list[str]:
    """The dependencies the lock misses or pins to a version outside their specifier."""
    problems = []
    for text in dependencies:
        dependency = Requirement(text)
        entry = entries.get(canonicalize_name(dependency.name))
        if entry is None:
            problems.append(f"{text}: not in the lock")
        elif not dependency.specifier.contains(pinned_version(entry[0]), prereleases=True):
            problems.append(f"{text}: the lock pins {pinned_version(entry[0])}")
    return problems


def pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def pip_installs(script: str) -> list[list[str]]:
    """The arguments after `install` of every pip install in a shell script (continuation lines joined)."""
    commands = []
    for line in re.sub(r"\\\n", " ", script).splitlines():
        match = PIP_INSTALL.search(line)
        if match:
            rest = re.split(r"\s(?:&&|\|\||;|\|)\s", match.group(1))[0]
            commands.append(shlex.split(rest, comments=True))
    return commands


def install_problem(args: list[str]) -> str | None:
    """Why one pip install's arguments may install something unhashed (None when they cannot)."""
    files, positional, options = [], [], []
    values = iter(args)
    for arg in values:
        if arg in ("-r", "--requirement"):
            files.append(next(values, ""))
        elif arg.startswith("--requirement="):
            files.append(arg.partition("=")[2])
        elif arg.startswith("-"):
            options.append(arg)
        else:
            positional.append(arg)
    if "--require-hashes" in options:
        if len(files) != 1 or not files[0].endswith(LOCK_PATH) or positional:
            return f"--require-hashes must install {LOCK_PATH} alone"
        return None
    if "--no-deps" in options:
        if "--no-build-isolation" not in options:
            return "--no-deps without --no-build-isolation fetches the build backend unhashed"
        if files or any(option in ("-e", "--editable") for option in options):
            return "--no-deps installs one path, no requirement file"
        if len(positional) != 1 or not positional[0].startswith((".", "$")):
            return "--no-deps installs the factory's own code (a path) and nothing else"
        return None
    return f"neither --require-hashes -r {LOCK_PATH} nor --no-deps"


def workflow_steps():
    """(file, job env, step) for every step of the workflows and the action."""
    for path in WORKFLOWS:
        workflow = yaml.safe_load(path.read_text())
        for job in workflow["jobs"].values():
            env = {**workflow.get("env", {}), **job.get("env", {})}
            for step in job.get("steps", []):
                yield path.name, env, step
    for step in yaml.safe_load(ACTION.read_text())["runs"]["steps"]:
        yield ACTION.name, {}, step


def test_the_lock_pins_every_requirement_with_hashes():
    entries = lock_entries(LOCK.read_text())
    assert entries
    for name, (_, hashes) in entries.items():
        assert len(hashes) == len(set(hashes)), f"{name}: a hash repeated"


def test_the_lock_covers_pyprojects_dependencies_and_build_backend():
    entries = lock_entries(LOCK.read_text())
    project = pyproject()
    assert uncovered(project["project"]["dependencies"], entries) == []
    # `pip install --no-deps --no-build-isolation` builds the tool with the locked backend
    assert uncovered(project["build-system"]["requires"], entries) == []


def test_the_lock_says_how_to_regenerate_it():
    header = [line for line in LOCK.read_text().splitlines()[:5] if line.startswith("#")]
    assert any("uv pip compile pyproject.toml" in line and "--generate-hashes" in line for line in header)


def test_every_pip_install_in_the_workflows_and_the_action_is_hashed_or_no_deps():
    seen: dict[str, set[str]] = {}
    for file, env, step in workflow_steps():
        for args in pip_installs(step.get("run", "")):
            problem = install_problem(args)
            assert problem is None, f"{file}: {step.get('name')}: pip install {' '.join(args)}: {problem}"
            seen.setdefault(file, set()).add("lock" if "--require-hashes" in args else "no-deps")
            # no token in pip's environment (the step's, its job's or the workflow's)
            for name, value in {**env, **step.get("env", {})}.items():
                assert "secrets." not in str(value) and "github.token" not in str(value), (file, step["name"], name)
                assert "TOKEN" not in name.upper() and "PASSWORD" not in name.upper(), (file, step["name"], name)
    # the check saw them: each of these installs the locked dependencies, then the tool
    installers = ("build.yml", "events.yml", "synth.yml", "validate.yml", "action.yml")
    assert seen == {file: {"lock", "no-deps"} for file in installers}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a==1 \\\n    --hash=sha256:" + "0" * 64 + "\nb>=2 \\\n    --hash=sha256:" + "1" * 64 + "\n", "not pinned"),
        ("a==1\n", "needs --hash"),
        ("a==1 --hash=md5:00\n", "needs --hash"),
        ("a==1.* --hash=sha256:" + "0" * 64 + "\n", "not pinned"),
        ("a==1 --hash=sha256:" + "0" * 64 + "\nA==2 --hash=sha256:" + "1" * 64 + "\n", "pinned twice"),
    ],
)
def test_the_lock_check_refuses_unpinned_or_unhashed_lines(text, problem):
    with pytest.raises(ValueError, match=problem):
        lock_entries(text)


def test_the_coverage_check_sees_a_missing_or_outdated_pin():
    entries = lock_entries("pyyaml==6.0.4 --hash=sha256:" + "0" * 64 + "\n")
    assert uncovered(["PyYAML>=6.0"], entries) == []
    assert uncovered(["pyyaml>=7"], entries) == ["pyyaml>=7: the lock pins 6.0.4"]
    assert uncovered(["requests>=2.28"], entries) == ["requests>=2.28: not in the lock"]


@pytest.mark.parametrize(
    ("script", "ok"),
    [
        ('python -m pip install --quiet --require-hashes -r "$code/requirements/workflows.lock"', True),
        ('"$RUNNER_TEMP/venv/bin/pip" install --quiet --no-deps --no-build-isolation "$code"', True),
        ("pip install \\\n  --require-hashes -r requirements/workflows.lock", True),
        ('python -m pip install --quiet "$factory"', False),
        ("pip install --no-deps .", False),
        ("pip install --no-deps --no-build-isolation . requests", False),
        ("pip install --require-hashes -r requirements/other.txt", False),
        ("pip install --require-hashes -r requirements/workflows.lock requests", False),
        ("pip3 install uv && uv pip install .", False),
    ],
)
def test_the_install_check_refuses_an_unhashed_install(script, ok):
    problems = [install_problem(args) for args in pip_installs(script)]
    assert problems
    assert all(problem is None for problem in problems) is ok, problems
