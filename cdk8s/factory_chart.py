"""cdk8s constructs of the factory. Objects are built as dicts in Python and handed to cdk8s once."""

from __future__ import annotations

from constructs import Construct

import cdk8s
import kargo_manifests
from image_factory.model import Config
from image_factory.state import State

KARGO_CHART = "kargo"
ARGOCD_CHART = "argocd-application"


class ManifestChart(cdk8s.Chart):
    """A chart of objects built as plain dicts, plus any ordinary constructs added to it.

    Every object crosses the jsii bridge once, in the single `to_json` call cdk8s makes at synth
    time; creating an ApiObject per object costs a bridge round trip per object and more, which
    does not scale to tens of thousands of Stages. Constructs added as children the usual way
    (ApiObjects, imported CRD classes) are synthesised after the plain objects.
    """

    def __init__(self, scope: Construct, chart_id: str, objects: list[dict]):
        super().__init__(scope, chart_id, disable_resource_name_hashes=True)
        self.objects = objects

    def to_json(self) -> list:
        return [*self.objects, *super().to_json()]


class KargoChart(ManifestChart):
    """The Project, its ProjectConfig, and the Warehouses and Stages of every watched image."""

    def __init__(self, scope: Construct, config: Config, state: State):
        super().__init__(scope, KARGO_CHART, kargo_manifests.factory_manifests(config, state))


class ArgoApplicationChart(ManifestChart):
    """The ArgoCD Application applying the Kargo chart's file: its own file, applied once by hand."""

    def __init__(self, scope: Construct, config: Config):
        super().__init__(scope, ARGOCD_CHART, [kargo_manifests.argocd_application(config, f"{KARGO_CHART}.k8s.yaml")])


def build_app(config: Config, state: State, outdir: str) -> cdk8s.App:
    app = cdk8s.App(outdir=outdir, yaml_output_type=cdk8s.YamlOutputType.FILE_PER_CHART)
    KargoChart(app, config, state)
    ArgoApplicationChart(app, config)
    return app
