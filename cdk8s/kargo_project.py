"""The Project, its namespace and its ProjectConfig (promotion policies, webhook receivers)."""

from __future__ import annotations

from image_factory.enrolment.model import Config
from image_factory.kargo import names
from kargo_objects import KARGO_API, meta

NAMESPACE_LABEL = "kargo.akuity.io/project"


def namespace(name: str) -> dict:
    """The Project's namespace, applied first. Kargo creates it asynchronously once the Project
    exists, so a Stage applied in the same sync could find no namespace; Kargo adopts a
    namespace that carries its project label. Kept when the Project goes: the namespace holds
    the hand-made token Secret, and its life is ArgoCD's to decide (docs/kargo.md §10)."""
    annotations = {"argocd.argoproj.io/sync-wave": "-2", "kargo.akuity.io/keep-namespace": "true"}
    labels = {NAMESPACE_LABEL: "true"}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(name, None, labels, annotations)}


def project(name: str) -> dict:
    # After its namespace, before anything in it.
    annotations = {"argocd.argoproj.io/sync-wave": "-1"}
    return {"apiVersion": KARGO_API, "kind": "Project", "metadata": meta(name, None, annotations=annotations)}


def project_config(config: Config) -> dict:
    settings = config.kargo
    spec: dict = {
        "promotionPolicies": [
            {"stageSelector": {"matchLabels": {names.AUTO_PROMOTE: "true"}}, "autoPromotionEnabled": True}
        ]
    }
    if settings.webhook_receivers:
        spec["webhookReceivers"] = [_webhook_receiver(r) for r in settings.webhook_receivers]
    return {
        "apiVersion": KARGO_API,
        "kind": "ProjectConfig",
        "metadata": meta(settings.project, settings.project),
        "spec": spec,
    }


def _webhook_receiver(receiver) -> dict:
    provider: dict = {"secretRef": {"name": receiver.secret_name}}
    if receiver.virtual_repo_name:
        provider["virtualRepoName"] = receiver.virtual_repo_name
    return {"name": receiver.name, receiver.type: provider}
