"""cdk8s constructs of the factory. Objects are built as dicts in Python and handed to cdk8s once."""

from __future__ import annotations

from collections.abc import Callable

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
    does not scale to tens of thousands of Stages. The objects are built only then, so that one
    chart's objects are alive at a time. Constructs added as children the usual way (ApiObjects,
    imported CRD classes) are synthesised after the plain objects.
    """

    def __init__(self, scope: Construct, chart_id: str, objects: Callable[[], list[dict]]):
        super().__init__(scope, chart_id, disable_resource_name_hashes=True)
        self.objects = objects

    def to_json(self) -> list:
        return [*self.objects(), *super().to_json()]


def build_app(
    config: Config,
    state: State,
    outdir: str,
    keys: dict[str, str] | None = None,
    part: tuple[int, int] = (0, 1),
    seen: set | None = None,
) -> cdk8s.App:
    """The Project in `kargo.k8s.yaml`, with the Warehouses and Stages while they fit in one file
    (`kargo.objectsPerFile`), else those spread over `kargo-pipelines-N-of-M.k8s.yaml`; and the
    ArgoCD Application in a file of its own, applied once by hand. `keys`: the public keys
    images.yaml names, by path (`signatures.public_keys`).

    cdk8s synthesises one chart (file) at a time: bounded files keep the peak memory of both
    Python and Node.js low on a large fleet (~1 MB of YAML each by default). `part` (k, n): only
    every n-th pipeline file from the k-th, the Project and the Application with k = 0, for n
    processes sharing the work (`seen` collects the names this one made, for a check across them).
    """
    app = cdk8s.App(outdir=outdir, yaml_output_type=cdk8s.YamlOutputType.FILE_PER_CHART)
    project = kargo_manifests.project_manifests(config)
    files = kargo_manifests.shards(kargo_manifests.watched_images(state), config.kargo.objects_per_file)
    seen = set() if seen is None else seen
    mine, share = part

    def objects(head: list[dict], parts: list[kargo_manifests.Part]) -> Callable[[], list[dict]]:
        def build() -> list[dict]:
            made = [*head]
            for part in parts:
                made += kargo_manifests.part_manifests(config, state, part, keys or {})
            kargo_manifests.check_unique(made, seen)
            return made

        return build

    if len(files) == 1:
        if mine == 0:
            ManifestChart(app, KARGO_CHART, objects(project, files[0]))
    else:
        if mine == 0:
            ManifestChart(app, KARGO_CHART, objects(project, []))
        width = len(str(len(files)))
        for number, parts in enumerate(files, 1):
            if (number - 1) % share == mine:
                chart_id = f"{KARGO_CHART}-pipelines-{number:0{width}d}-of-{len(files)}"
                ManifestChart(app, chart_id, objects([], parts))
    if mine == 0:
        application = kargo_manifests.argocd_application(config, f"{KARGO_CHART}*.k8s.yaml")
        ManifestChart(app, ARGOCD_CHART, lambda: [application])
    return app
