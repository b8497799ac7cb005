"""`image-factory check-workflow`: a team's build workflow against the build contract
(docs/build-contract.md), on the workflows the README and this repository ship and on broken ones."""

from __future__ import annotations

import pytest

from image_factory.cli import main

from ..conftest import REPO_ROOT
from ..workflows.test_workflows import readme_team_build_workflow

ENROLMENT = """
kargo: {factoryRepo: acme/image-factory}
images:
  - name: app
    registry: ghcr.io
    repository: acme/app
    source: {provider: github, repo: acme/app, dockerfile: Dockerfile, workflow: build.yml}
"""

OWN = """
name: build
on:
  workflow_dispatch:
    inputs:
      image: {type: string, required: true}
      bases: {type: string, default: ""}
      base: {type: string, default: ""}
      digest: {type: string, default: ""}
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: image-factory build-info --root factory --image "$IMAGE" > pins.txt
      - run: docker buildx build --push .
      - run: |
          curl -X POST "$API/repos/acme/image-factory/dispatches" -d '{"event_type": "image-built"}'
"""


def check(factory, workflow: str, enrolment: str = ENROLMENT) -> int:
    factory.write("images.yaml", enrolment)
    path = factory.write(".github/workflows/build.yml", workflow)
    return main(["check-workflow", "--root", str(factory.root), "--image", "app", str(path)])


def test_the_readme_team_workflow_keeps_the_contract(factory, capsys):
    caller = readme_team_build_workflow().replace("<commit sha>", "0" * 40)
    assert check(factory, caller) == 0
    assert "keeps the build contract for app, by calling the factory's build.yml" in capsys.readouterr().out


def test_a_call_that_drops_kargos_inputs_is_refused(factory, capsys):
    caller = readme_team_build_workflow().replace("<commit sha>", "0" * 40)
    broken = caller.replace("      digest: ${{ inputs.digest }}\n", "").replace(
        ', digest: {type: string, default: ""}', ""
    )
    assert check(factory, broken) == 1
    err = capsys.readouterr().err
    assert "workflow_dispatch does not declare the input 'digest': GitHub refuses a dispatch with it" in err
    assert "the call of build.yml does not forward digest: ${{ inputs.digest }}" in err


def test_a_workflow_of_its_own_needs_a_signing_policy_it_can_meet(factory, capsys):
    """Without `signing`, builds must carry the factory's build.yml identity: a workflow of one's
    own never can, so every report would be refused."""
    assert check(factory, OWN) == 1
    assert "app: no signing policy, so its builds must be signed keyless by the factory's build.yml" in (
        capsys.readouterr().err
    )
    signed = ENROLMENT + "    signing: {key: keys/app.pub}\n"
    assert check(factory, OWN, signed) == 0
    assert "keeps the build contract for app, as far as its file shows" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (('image-factory build-info --root factory --image "$IMAGE" > pins.txt', "echo"), "nothing pins the bases"),
        (('{"event_type": "image-built"}', "{}"), "no step sends the factory image-built"),
        (("workflow_dispatch:", "push:"), "no workflow_dispatch trigger"),
        (("base: {type: string", "base: {type: number"), "input 'base' must be a string"),
    ],
)
def test_each_broken_rule_is_named(factory, capsys, change, says):
    signed = ENROLMENT + "    signing: {key: keys/app.pub}\n"
    assert check(factory, OWN.replace(*change), signed) == 1
    assert says in capsys.readouterr().err


def test_the_factorys_own_build_workflow_keeps_it(factory, capsys):
    """build.yml itself, for a `local` image of the factory: it pins, reports and signs."""
    enrolment = ENROLMENT.replace("provider: github, repo: acme/app", "provider: local, repo: app")
    workflow = (REPO_ROOT / ".github" / "workflows" / "build.yml").read_text()
    assert check(factory, workflow, enrolment + "    signing: {key: keys/app.pub}\n") == 0
