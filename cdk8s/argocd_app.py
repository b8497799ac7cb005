"""The ArgoCD Application that applies the published manifests."""

from __future__ import annotations

from image_factory.enrolment.model import Config
from image_factory.errors import FactoryError, Problem
from kargo_objects import meta

COMPARE_OPTIONS = {"argocd.argoproj.io/compare-options": "ServerSideDiff=true,IncludeMutationWebhook=true"}


def argocd_application(config: Config, manifests_file: str) -> dict:
    """The Application that applies the published manifests; applied once by hand."""
    argo, settings = config.argocd, config.kargo
    repo_url = argo.repo_url or (f"https://github.com/{settings.factory_repo}.git" if settings.factory_repo else None)
    if repo_url is None:
        raise FactoryError(Problem(config.file, "set argocd.repoURL or kargo.factoryRepo", field="argocd"))
    refresh = ["/metadata/annotations/kargo.akuity.io~1refresh"]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        # Kargo's admission webhooks default subscription fields and rewrite durations (1h → 1h0m0s):
        # a diff through the API server's dry run sees the objects as Kargo stores them.
        "metadata": meta(argo.name or settings.project, argo.namespace, annotations=COMPARE_OPTIONS),
        "spec": {
            "project": argo.project,
            "source": {
                "repoURL": repo_url,
                "targetRevision": argo.target_revision,
                "path": argo.path,
                "directory": {"include": manifests_file},
            },
            "destination": {"server": argo.destination_server, "namespace": settings.project},
            # Retried: on a first sync Kargo may still be setting the Project up when the Stages arrive.
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                "retry": {"limit": 10, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"}},
            },
            # Kargo annotates Warehouses and Stages when it refreshes them: not drift.
            "ignoreDifferences": [
                {"group": "kargo.akuity.io", "kind": kind, "jsonPointers": refresh} for kind in ("Warehouse", "Stage")
            ],
        },
    }
