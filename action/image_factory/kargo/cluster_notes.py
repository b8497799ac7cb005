"""What the cluster must have for the generated manifests to work, and settings that do nothing.

Pure functions of the model; `validate` and `synth` print them. docs/kargo.md has the sources.
"""

from __future__ import annotations

from image_factory.enrolment.model import Config
from image_factory.kargo.layout import scan_severity
from image_factory.state.store import State

# Registries whose pushes each receiver type reports. Kargo refreshes the Warehouses subscribed to
# the pushed repository, so a receiver none of whose registries any Warehouse watches does nothing.
# Types served by self-hosted registries of any name (gitlab, gitea, harbor, artifactory…) are
# not checked.
RECEIVER_REGISTRIES = {"github": ("ghcr.io",), "dockerhub": ("docker.io",), "quay": ("quay.io",)}

VERIFICATION_NEEDS = (
    "verification runs as Argo Rollouts AnalysisRuns: the cluster needs Argo Rollouts (its CRDs and its "
    "controller) and Kargo's Rollouts integration (Helm values controller.rollouts.integrationEnabled and "
    "api.rollouts.integrationEnabled, both true by default, and switched off at start-up when the CRDs are "
    "missing). Without them every verification of {what} errors, and what waits on it never moves."
)


def receiver_warnings(config: Config, state: State) -> list[str]:
    """Webhook receivers that no Warehouse of this factory would ever hear from."""
    watched = {base.warehouse.repo_url.split("/", 1)[0] for base in state.base_images.values() if base.warehouse}
    warnings = []
    for receiver in config.kargo.webhook_receivers:
        registries = RECEIVER_REGISTRIES.get(receiver.type)
        if registries and not watched.intersection(registries):
            warnings.append(
                f"{config.file}: kargo.webhookReceivers {receiver.name!r} ({receiver.type}) refreshes Warehouses "
                f"watching {' or '.join(registries)}, and no Warehouse watches it: the receiver does nothing"
            )
    return warnings


def verification_note(state: State) -> str | None:
    """What verification needs from the cluster, when any Stage verifies something."""
    verified = sorted(base.ref.canonical for base in state.base_images.values() if base.verify and base.warehouse)
    tested = sorted(
        image.name for image in state.images.values() if (image.enrolment.get("test") or {}).get("analysisTemplates")
    )
    scanned = sorted(
        f"the scans of {base.ref.canonical}"
        for base in state.base_images.values()
        if base.warehouse and scan_severity(base, state.images) is not None
    )
    if not verified and not tested and not scanned:
        return None
    what = ", ".join([*verified, *tested, *scanned])
    return "note: " + VERIFICATION_NEEDS.format(what=what)
