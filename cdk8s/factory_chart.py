"""cdk8s constructs of the factory. Objects are built as dicts in Python and handed to cdk8s once."""

from __future__ import annotations

from collections.abc import Callable

from constructs import Construct

import cdk8s


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


def app_of(made: list[tuple[str, Callable[[], list[dict]]]], outdir: str) -> cdk8s.App:
    """A cdk8s app writing each chart's objects (built when cdk8s asks) to `<chart id>.k8s.yaml`."""
    app = cdk8s.App(outdir=outdir, yaml_output_type=cdk8s.YamlOutputType.FILE_PER_CHART)
    for chart_id, objects in made:
        ManifestChart(app, chart_id, objects)
    return app
