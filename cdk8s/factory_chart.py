"""cdk8s constructs of the factory. Each object is built as a dict in Python and handed over once."""

from __future__ import annotations

from constructs import Construct

import cdk8s
import kargo_manifests
from image_factory.model import Config
from image_factory.state import State

KARGO_CHART = "kargo"
ARGOCD_CHART = "argocd-application"


class Manifest(cdk8s.ApiObject):
    """An API object whose whole body is known up front.

    Overriding `to_json` makes synth read the body back in one call, instead of one bridge call
    per field or JSON patch.
    """

    def __init__(self, scope: Construct, body: dict):
        metadata = body["metadata"]
        construct_id = f"{body['kind']}-{metadata.get('namespace', '')}-{metadata['name']}"
        super().__init__(
            scope, construct_id, api_version=body["apiVersion"], kind=body["kind"], metadata={"name": metadata["name"]}
        )
        self._body = body

    def to_json(self) -> dict:
        return self._body


class KargoChart(cdk8s.Chart):
    """The Project, its ProjectConfig, and the Warehouses and Stages of every watched image."""

    def __init__(self, scope: Construct, config: Config, state: State):
        super().__init__(scope, KARGO_CHART, disable_resource_name_hashes=True)
        for body in kargo_manifests.factory_manifests(config, state):
            Manifest(self, body)


class ArgoApplicationChart(cdk8s.Chart):
    """The ArgoCD Application applying the Kargo chart's file: its own file, applied once by hand."""

    def __init__(self, scope: Construct, config: Config):
        super().__init__(scope, ARGOCD_CHART, disable_resource_name_hashes=True)
        Manifest(self, kargo_manifests.argocd_application(config, f"{KARGO_CHART}.k8s.yaml"))


def build_app(config: Config, state: State, outdir: str) -> cdk8s.App:
    app = cdk8s.App(outdir=outdir, yaml_output_type=cdk8s.YamlOutputType.FILE_PER_CHART)
    KargoChart(app, config, state)
    ArgoApplicationChart(app, config)
    return app
