"""Checking a team's build workflow against the build contract (docs/build-contract.md).

What can be read from the workflow file, before it ever runs: the dispatch inputs Kargo and the
factory send, whether it hands its build to the factory's build.yml (and forwards every input),
or else pins its bases with build-info, reports image-built, and has a signing policy in
images.yaml it can meet. Pure: the caller reads the files.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from image_factory.enrolment.model import Config
from image_factory.errors import FactoryError, Problem

INPUTS = ("image", "bases", "base", "digest")  # what Kargo and the factory dispatch with


@dataclass(frozen=True)
class Verdict:
    problems: list[Problem]
    delegates: bool  # it calls the factory's build.yml, which keeps the rest of the contract


def check(config: Config, name: str, file: str, text: str) -> Verdict:
    """Every way the workflow in `text` (the file `file`) breaks the contract for managed image `name`."""
    image = config.by_name(name)
    if image is None or not image.managed:
        raise FactoryError(Problem("--image", f"{name!r} is not a managed image in {config.file}"))
    try:
        workflow = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise FactoryError(Problem(file, f"not YAML: {error}")) from None
    if not isinstance(workflow, dict):
        raise FactoryError(Problem(file, "not a workflow (a mapping with on: and jobs:)"))
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    problems = _dispatch_inputs(file, triggers)
    jobs = workflow.get("jobs") if isinstance(workflow.get("jobs"), dict) else {}
    factory_build = f"{config.kargo.factory_repo}/.github/workflows/build.yml@"
    calls = [
        job for job in jobs.values() if isinstance(job, dict) and str(job.get("uses", "")).startswith(factory_build)
    ]
    if calls:
        for job in calls:
            given = job.get("with") or {}
            for key in INPUTS:
                expression = f"inputs.{key}"
                if expression not in str(given.get(key, "")):
                    problems.append(
                        Problem(file, f"the call of build.yml does not forward {key}: ${{{{ {expression} }}}}")
                    )
        return Verdict(problems, delegates=True)
    scripts = " ".join(
        str(step.get("run", ""))
        for job in jobs.values()
        if isinstance(job, dict)
        for step in job.get("steps") or []
        if isinstance(step, dict)
    )
    if "build-info" not in scripts:
        problems.append(
            Problem(file, "no step runs `image-factory build-info`: nothing pins the bases to the digests sent")
        )
    if "image-built" not in scripts:
        problems.append(Problem(file, "no step sends the factory image-built: its attempts would stay pending"))
    if image.signing is None:
        problems.append(
            Problem(
                config.file,
                f"{name}: no signing policy, so its builds must be signed keyless by the factory's build.yml, "
                "which a workflow of its own cannot be: every report would be refused. Set signing "
                "(a key, or this workflow's identity)",
                image.line,
            )
        )
    return Verdict(problems, delegates=False)


def _dispatch_inputs(file: str, triggers: object) -> list[Problem]:
    if isinstance(triggers, str):
        triggers = {triggers: None}
    elif isinstance(triggers, list):
        triggers = dict.fromkeys(triggers)
    if not isinstance(triggers, dict) or "workflow_dispatch" not in triggers:
        return [Problem(file, "no workflow_dispatch trigger: the factory and Kargo start builds with it")]
    declared = (triggers["workflow_dispatch"] or {}).get("inputs") or {}
    problems = []
    for name in INPUTS:
        spec = declared.get(name)
        if not isinstance(spec, dict) and name not in declared:
            problems.append(
                Problem(
                    file, f"workflow_dispatch does not declare the input {name!r}: GitHub refuses a dispatch with it"
                )
            )
        elif isinstance(spec, dict) and spec.get("type", "string") != "string":
            problems.append(Problem(file, f"workflow_dispatch input {name!r} must be a string (JSON, references)"))
    return problems
