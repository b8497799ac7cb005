"""The Stages that rebuild what is built on a watched image: shared soak Stages, and Stages of their own."""

from __future__ import annotations

from github_steps import factory_event, github_call
from image_factory.enrolment.durations import format_hours, parse_duration
from image_factory.enrolment.model import Config
from image_factory.kargo import names
from image_factory.state.store import ImageState
from kargo_objects import KARGO_API, Watched, config_values, image_field, meta, ref_annotation


def soak_sources(watched: Watched, delay: str) -> dict:
    """Freight from the recording Stage (verified there first when verification is required), held
    until it has stayed there `delay`."""
    sources: dict = {"stages": [watched.name]}
    soak = parse_duration(delay)
    if soak.total_seconds() > 0:
        sources["requiredSoakTime"] = format_hours(soak)
    return sources


def soak_stage(config: Config, watched: Watched, delay: str) -> dict:
    """Waits until the base's Freight has soaked `delay` in the recording Stage, then tells the
    factory repository (`repository_dispatch` `base-image-soaked`), whose `dispatch --base`
    rebuilds the images on it then due: those with this delay, and any other the plan allows.
    For the images without a Stage of their own (kargo_layout); one Stage per distinct delay."""
    payload = {"image": watched.base.ref.canonical, "digest": image_field(watched, "Digest"), "delay": delay}
    name = names.soak_name(watched.name, delay)
    steps = factory_event(config, "soaked", "base-image-soaked", payload)
    labels = {names.ROLE: "soak", names.WATCHED: watched.name, names.AUTO_PROMOTE: "true"}
    return {
        "apiVersion": KARGO_API,
        "kind": "Stage",
        "metadata": meta(name, config.kargo.project, labels, ref_annotation(watched)),
        "spec": {
            "requestedFreight": [
                {"origin": {"kind": "Warehouse", "name": watched.name}, "sources": soak_sources(watched, delay)}
            ],
            "promotionTemplate": {"spec": {"steps": steps}},
        },
    }


def rebuild_stage(config: Config, watched: Watched, image: ImageState) -> dict:
    """For an image with a Stage of its own (kargo_layout.own_rebuild_stage): waits until the
    base's Freight has soaked `rebuildDelay` in the recording Stage, then dispatches the image's
    build workflow with the base reference and digest as inputs. `kargo.dispatchStep` chooses the
    step for these Stages only; the factory's own events always go through the `http` step."""
    settings = config.kargo
    source = image.enrolment["source"]
    repo = source["repo"] if source["provider"] == "github" else settings.factory_repo
    inputs = {
        "image": image.name,
        "base": watched.base.ref.canonical,
        "digest": image_field(watched, "Digest"),
    }
    if settings.dispatch_step == "gha-dispatch-workflow":
        steps = [
            {
                "uses": "gha-dispatch-workflow",
                "as": "rebuild",
                "config": {
                    "repoURL": f"https://github.com/{repo}",
                    "workflowFile": source["workflow"],
                    "ref": source["branch"],
                    "inputs": config_values(inputs),
                },
            }
        ]
    else:
        steps = github_call(
            config,
            name="rebuild",
            url=f"{settings.github_api_url}/repos/{repo}/actions/workflows/{source['workflow']}/dispatches",
            body={"ref": source["branch"], "inputs": inputs},
            refused=f"GitHub refused to dispatch {source['workflow']} in {repo}",
        )
    sources = soak_sources(watched, image.enrolment["rebuildDelay"])
    labels = {names.ROLE: "rebuild", names.WATCHED: watched.name, names.IMAGE: image.name}
    if image.enrolment["autoRebuild"]:
        labels[names.AUTO_PROMOTE] = "true"
    spec: dict = {
        "requestedFreight": [{"origin": {"kind": "Warehouse", "name": watched.name}, "sources": sources}],
        "promotionTemplate": {"spec": {"steps": steps}},
    }
    templates = image.enrolment.get("test", {}).get("analysisTemplates")
    if templates:  # the image's own checks (a smoke test, say), with what the Stage rebuilt
        spec["verification"] = {
            "analysisTemplates": [{"name": name} for name in templates],
            "args": [{"name": key, "value": value} for key, value in config_values(inputs).items()],
        }
    return {
        "apiVersion": KARGO_API,
        "kind": "Stage",
        "metadata": meta(
            names.rebuild_name(image.name, watched.name), settings.project, labels, ref_annotation(watched)
        ),
        "spec": spec,
    }
