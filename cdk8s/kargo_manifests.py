"""The Kargo and ArgoCD objects of a factory, as plain dicts. Pure functions of the model.

Everything is built in Python and handed to cdk8s once per object (the jsii bridge is the
expensive part of a synth).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from image_factory.enrolment.durations import format_hours, parse_duration
from image_factory.enrolment.model import Config, WarehouseConfig
from image_factory.errors import FactoryError, Problem
from image_factory.kargo import layout as kargo_layout
from image_factory.kargo import names
from image_factory.state.store import BaseImageState, ImageState, State
from kargo_expressions import TARGET_FREIGHT, Expr, image_from, json_body, refuse_in, secret, string

KARGO_API = "kargo.akuity.io/v1alpha1"
KARGO_CHART = "kargo"  # the chart (file) of the Project, and of everything while it fits in one
ARGOCD_CHART = "argocd-application"
GITHUB_HEADERS = (("Accept", "application/vnd.github+json"), ("X-GitHub-Api-Version", "2022-11-28"))
# GitHub answers a dispatch with 204, and with 200 and the run's details when asked for them (the
# workflow dispatch endpoint's `return_run_details`): any 2xx succeeds. A 4xx is a refusal (bad
# token, unknown workflow, bad inputs) and fails the promotion with GitHub's message, except for
# its rate limits: 429, and 403 with no requests left or a Retry-After (primary and secondary
# limits). Those and 5xx are neither success nor failure: the http step polls, re-sending the
# request, until the retry timeout.
SUCCESS = "response.status >= 200 && response.status < 300"
RATE_LIMITED = "(response.header('X-RateLimit-Remaining') == '0' || response.header('Retry-After') != '')"
REFUSED = (
    "response.status >= 400 && response.status < 500 && response.status != 429"
    f" && !(response.status == 403 && {RATE_LIMITED})"
)
MESSAGE = "response.body.message"
# Kargo's default errorThreshold is 1: one timeout or connection error would fail the promotion,
# and Kargo never auto-promotes that Freight again. An errored step is retried after the
# controller's exponential backoff (5 ms doubling, at most 1000 s), so the threshold buys
# attempts, not time: 20 rides out about half an hour of GitHub being unreachable, and the
# step's timeout ends it after an hour whatever happens (docs/kargo.md §4).
RETRY = {"errorThreshold": 20, "timeout": "1h"}
POLL_INTERVAL = "1m"
NAMESPACE_LABEL = "kargo.akuity.io/project"
COMPARE_OPTIONS = {"argocd.argoproj.io/compare-options": "ServerSideDiff=true,IncludeMutationWebhook=true"}


@dataclass(frozen=True)
class Watched:
    """A watched image: its Warehouse, its recording Stage, and the Stages that rebuild what is
    built on it (kargo_layout): a soak Stage per delay in `soak_delays`, and a rebuild Stage of
    its own for each of `own_stage_images`."""

    name: str
    base: BaseImageState
    warehouse: WarehouseConfig
    soak_delays: tuple[str, ...] = ()
    own_stage_images: tuple[str, ...] = ()


def watched_images(state: State) -> list[Watched]:
    """Every image with something to watch, by name. A digest-only reference has nothing."""
    watched = [
        Watched(
            names.watched_name(b.ref),
            b,
            b.warehouse,
            tuple(kargo_layout.soak_delays(b, state.images)),
            tuple(kargo_layout.own_stage_images(b, state.images)),
        )
        for b in state.base_images.values()
        if b.warehouse
    ]
    return sorted(watched, key=lambda w: w.name)


def factory_manifests(config: Config, state: State, keys: dict[str, str] | None = None) -> list[dict]:
    """The Project, its ProjectConfig, and per watched image a Warehouse, a recording Stage (and
    its verification), a soak Stage per delay of the images built on it, and a rebuild Stage for
    each of those that has a Stage of its own, in a stable order.
    `keys`: the public keys images.yaml names (`public_keys`), by path."""
    objects = project_manifests(config)
    for part in parts(watched_images(state)):
        objects += part_manifests(config, state, part, keys or {})
    check_unique(objects)
    return objects


def project_manifests(config: Config) -> list[dict]:
    """The Project and its ProjectConfig."""
    if config.kargo.factory_repo is None:
        raise FactoryError(
            Problem(config.file, "kargo.factoryRepo is not set: the generated stages dispatch to it", field="kargo")
        )
    with _refusing(config, "the Project"):
        refuse_in([asdict(config.kargo), asdict(config.argocd)])
        name = config.kargo.project
        return [namespace(name), project(name), project_config(config)]


def watched_manifests(config: Config, watched: Watched, keys: dict[str, str]) -> list[dict]:
    """A watched image's Warehouse and recording Stage; with a verify policy, also what checks
    its signatures (an AnalysisTemplate, the public key's ConfigMap) and the Stage that reports
    verified Freight; then its soak Stages."""
    objects = [warehouse(config, watched), recording_stage(config, watched)]
    policy = watched.base.verify
    if policy is not None:
        if policy.key_file is not None:
            objects.append(key_config_map(config, watched, keys[policy.key_file]))
        objects.append(analysis_template(config, watched))
        if not policy.required:
            objects.append(advisory_stage(config, watched))
        objects.append(verified_stage(config, watched))
    objects += [soak_stage(config, watched, delay) for delay in watched.soak_delays]
    return objects


@dataclass(frozen=True)
class Part:
    """Objects generated together: a watched image's own (`image` None), its soak Stages
    included, or the Stage of its own rebuilding managed `image` on it."""

    watched: Watched
    image: str | None = None

    @property
    def name(self) -> str:
        return self.watched.name if self.image is None else names.rebuild_name(self.image, self.watched.name)

    @property
    def size(self) -> int:
        """How many objects it makes."""
        if self.image is not None:
            return 1
        policy = self.watched.base.verify
        soaks = len(self.watched.soak_delays)
        if policy is None:
            return 2 + soaks
        return 4 + (policy.key_file is not None) + (not policy.required) + soaks


def parts(watched: list[Watched]) -> list[Part]:
    """Each watched image's own part, then one per managed image on it with a Stage of its own."""
    return [part for item in watched for part in (Part(item), *(Part(item, i) for i in item.own_stage_images))]


def part_manifests(config: Config, state: State, part: Part, keys: dict[str, str]) -> list[dict]:
    base = part.watched.base
    what = f"Stage {part.name} (image {part.image})" if part.image else f"the Warehouse and Stages of {part.name}"
    with _refusing(config, what):
        # Each text is checked with the part it belongs to: a base's once, an image's once.
        if part.image is None:
            refuse_in([base.ref.canonical, base.warehouse.to_dict(), base.verify.to_dict() if base.verify else {}])
            return watched_manifests(config, part.watched, keys)
        image = state.images[part.image]
        refuse_in([image.name, image.ref.canonical, image.enrolment])
        return [rebuild_stage(config, part.watched, image)]


@contextmanager
def _refusing(config: Config, what: str):
    """Turns a refusal of user text (kargo_expressions) into an error naming what it was for."""
    try:
        yield
    except ValueError as error:
        raise FactoryError(Problem(config.file, f"refusing to generate {what}: {error}")) from None


def shards(watched: list[Watched], per_file: int) -> list[list[Part]]:
    """Every watched image's objects spread over as few files as hold `per_file` objects each.

    One file while everything fits; beyond that a power of two of files, each part in the file
    its object name hashes to, so a change touches few files and doubling the count splits
    every file in two rather than reshuffling the lot. A watched image's soak Stages stay with
    its Warehouse; the Stages of images with one of their own spread like the rest.
    """
    every = parts(watched)
    total = sum(part.size for part in every)
    count = 1
    while total > count * per_file:
        count *= 2
    files: list[list[Part]] = [[] for _ in range(count)]
    for part in every:
        files[names.shard_of(part.name, count) if count > 1 else 0].append(part)
    return files


def _meta(name: str, namespace: str | None, labels: dict | None = None, annotations: dict | None = None) -> dict:
    metadata: dict = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = {**names.MANAGED_BY, **(labels or {})}
    if annotations:
        metadata["annotations"] = annotations
    return metadata


def namespace(name: str) -> dict:
    """The Project's namespace, applied first. Kargo creates it asynchronously once the Project
    exists, so a Stage applied in the same sync could find no namespace; Kargo adopts a
    namespace that carries its project label. Kept when the Project goes: the namespace holds
    the hand-made token Secret, and its life is ArgoCD's to decide (docs/kargo.md §10)."""
    annotations = {"argocd.argoproj.io/sync-wave": "-2", "kargo.akuity.io/keep-namespace": "true"}
    labels = {NAMESPACE_LABEL: "true"}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(name, None, labels, annotations)}


def project(name: str) -> dict:
    # After its namespace, before anything in it.
    annotations = {"argocd.argoproj.io/sync-wave": "-1"}
    return {"apiVersion": KARGO_API, "kind": "Project", "metadata": _meta(name, None, annotations=annotations)}


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
        "metadata": _meta(settings.project, settings.project),
        "spec": spec,
    }


def _webhook_receiver(receiver) -> dict:
    provider: dict = {"secretRef": {"name": receiver.secret_name}}
    if receiver.virtual_repo_name:
        provider["virtualRepoName"] = receiver.virtual_repo_name
    return {"name": receiver.name, receiver.type: provider}


def warehouse(config: Config, watched: Watched) -> dict:
    subscription = watched.warehouse.to_dict()
    interval = subscription.pop("interval", None) or config.kargo.warehouse_interval
    labels = {names.ROLE: "warehouse", names.WATCHED: watched.name}
    return {
        "apiVersion": KARGO_API,
        "kind": "Warehouse",
        "metadata": _meta(
            watched.name, config.kargo.project, labels, {names.REF_ANNOTATION: watched.base.ref.canonical}
        ),
        "spec": {
            "interval": format_hours(parse_duration(interval)),
            "freightCreationPolicy": "Automatic",
            "subscriptions": [{"image": subscription}],
        },
    }


def _image(watched: Watched, field: str) -> Expr:
    return image_from(watched.warehouse.repo_url, field)


def _templates(values: dict) -> dict:
    """Values for config fields of their own (each a whole value, not inside a body)."""
    return {key: value.template() if isinstance(value, Expr) else value for key, value in values.items()}


def recording_stage(config: Config, watched: Watched) -> dict:
    """Takes every new Freight straight from the Warehouse and reports it to the factory repository
    (`repository_dispatch` `base-image-updated`), so the digest lands in the state history in git."""
    settings = config.kargo
    payload = {
        "image": watched.base.ref.canonical,
        "repoURL": watched.warehouse.repo_url,
        "tag": _image(watched, "Tag"),
        "digest": _image(watched, "Digest"),
        "freight": TARGET_FREIGHT,
    }
    steps = _factory_event(config, "record", "base-image-updated", payload)
    labels = {names.ROLE: "record", names.WATCHED: watched.name, names.AUTO_PROMOTE: "true"}
    spec: dict = {
        "requestedFreight": [{"origin": {"kind": "Warehouse", "name": watched.name}, "sources": {"direct": True}}],
        "promotionTemplate": {"spec": {"steps": steps}},
    }
    if watched.base.verification_required:
        # Downstream Stages (soak, rebuild, verified) only see Freight verified here.
        spec["verification"] = _verification(watched)
    return {
        "apiVersion": KARGO_API,
        "kind": "Stage",
        "metadata": _meta(watched.name, settings.project, labels, _ref_annotation(watched)),
        "spec": spec,
    }


def key_config_map(config: Config, watched: Watched, pem: str) -> dict:
    """The cosign public key from the factory repository, mounted into the verification Job.
    A public key is not a credential: it may sit in a manifest."""
    labels = {names.ROLE: "verify-key", names.WATCHED: watched.name}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(names.key_name(watched.name), config.kargo.project, labels, _ref_annotation(watched)),
        "data": {"cosign.pub": pem},
    }


def analysis_template(config: Config, watched: Watched) -> dict:
    """An Argo Rollouts AnalysisTemplate whose Job runs `cosign verify` on `<repo>@<digest>`, the
    digest passed in by the recording Stage's verification. A failed Job fails the verification:
    the Freight never reaches the soak and rebuild Stages, and Kargo's UI shows why."""
    settings, policy = config.kargo, watched.base.verify
    args = ["verify"]
    mounts, volumes = [], []
    if policy.keyless:
        for flag, value in (
            ("--certificate-identity", policy.identity),
            ("--certificate-identity-regexp", policy.identity_regexp),
            ("--certificate-oidc-issuer", policy.issuer),
            ("--certificate-oidc-issuer-regexp", policy.issuer_regexp),
        ):
            if value is not None:
                args += [flag, value]
    else:
        args += ["--key", "/cosign/cosign.pub"]
        mounts.append({"name": "cosign-key", "mountPath": "/cosign", "readOnly": True})
        if policy.key_file is not None:
            volumes.append({"name": "cosign-key", "configMap": {"name": names.key_name(watched.name)}})
        else:
            volumes.append(
                {
                    "name": "cosign-key",
                    "secret": {"secretName": policy.key_secret, "items": [{"key": "cosign.pub", "path": "cosign.pub"}]},
                }
            )
    if not policy.transparency_log:
        args.append("--insecure-ignore-tlog=true")
    args.append(f"{watched.warehouse.repo_url}@{{{{args.digest}}}}")
    container: dict = {"name": "cosign", "image": settings.cosign_image, "args": args}
    if settings.verify_registry_secret:
        mounts.append({"name": "registry-auth", "mountPath": "/docker", "readOnly": True})
        volumes.append(
            {
                "name": "registry-auth",
                "secret": {
                    "secretName": settings.verify_registry_secret,
                    "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                },
            }
        )
        container["env"] = [{"name": "DOCKER_CONFIG", "value": "/docker"}]
    if mounts:
        container["volumeMounts"] = mounts
    pod: dict = {"restartPolicy": "Never", "containers": [container]}
    if volumes:
        pod["volumes"] = volumes
    labels = {names.ROLE: "verify", names.WATCHED: watched.name}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": _meta(names.verify_name(watched.name), settings.project, labels, _ref_annotation(watched)),
        "spec": {
            "args": [{"name": "digest"}],
            "metrics": [
                {
                    "name": "cosign-verify",
                    "provider": {
                        "job": {"spec": {"backoffLimit": 0, "activeDeadlineSeconds": 600, "template": {"spec": pod}}}
                    },
                }
            ],
        },
    }


def _verification(watched: Watched) -> dict:
    return {
        "analysisTemplates": [{"name": names.verify_name(watched.name)}],
        "args": [{"name": "digest", "value": _image(watched, "Digest").template()}],
    }


def advisory_stage(config: Config, watched: Watched) -> dict:
    """With `required: false`: verifies each Freight from the recording Stage without holding the
    rebuilds back (they take Freight from the recording Stage); the outcome shows in Kargo's UI,
    and verified Freight goes on to the verified Stage. Its promotion only notes the digest."""
    labels = {names.ROLE: "verify", names.WATCHED: watched.name, names.AUTO_PROMOTE: "true"}
    note = {"uses": "compose-output", "as": "candidate", "config": {"digest": _image(watched, "Digest").template()}}
    return {
        "apiVersion": KARGO_API,
        "kind": "Stage",
        "metadata": _meta(names.advisory_name(watched.name), config.kargo.project, labels, _ref_annotation(watched)),
        "spec": {
            "requestedFreight": [
                {"origin": {"kind": "Warehouse", "name": watched.name}, "sources": {"stages": [watched.name]}}
            ],
            "promotionTemplate": {"spec": {"steps": [note]}},
            "verification": _verification(watched),
        },
    }


def verified_stage(config: Config, watched: Watched) -> dict:
    """Takes the Freight verified (in the recording Stage, or the advisory one) and reports it to
    the factory repository (`repository_dispatch` `base-image-verified`): state marks the digest
    verified, and `plan` lets a rebuild use it."""
    settings = config.kargo
    payload = {
        "image": watched.base.ref.canonical,
        "digest": _image(watched, "Digest"),
        "freight": TARGET_FREIGHT,
    }
    steps = _factory_event(config, "verified", "base-image-verified", payload)
    labels = {names.ROLE: "verified", names.WATCHED: watched.name, names.AUTO_PROMOTE: "true"}
    gate = watched.name if watched.base.verification_required else names.advisory_name(watched.name)
    return {
        "apiVersion": KARGO_API,
        "kind": "Stage",
        "metadata": _meta(names.verified_name(watched.name), settings.project, labels, _ref_annotation(watched)),
        "spec": {
            "requestedFreight": [
                {"origin": {"kind": "Warehouse", "name": watched.name}, "sources": {"stages": [gate]}}
            ],
            "promotionTemplate": {"spec": {"steps": steps}},
        },
    }


def _ref_annotation(watched: Watched) -> dict:
    return {names.REF_ANNOTATION: watched.base.ref.canonical}


def _soak_sources(watched: Watched, delay: str) -> dict:
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
    payload = {"image": watched.base.ref.canonical, "digest": _image(watched, "Digest"), "delay": delay}
    name = names.soak_name(watched.name, delay)
    steps = _factory_event(config, "soaked", "base-image-soaked", payload)
    labels = {names.ROLE: "soak", names.WATCHED: watched.name, names.AUTO_PROMOTE: "true"}
    return {
        "apiVersion": KARGO_API,
        "kind": "Stage",
        "metadata": _meta(name, config.kargo.project, labels, _ref_annotation(watched)),
        "spec": {
            "requestedFreight": [
                {"origin": {"kind": "Warehouse", "name": watched.name}, "sources": _soak_sources(watched, delay)}
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
        "digest": _image(watched, "Digest"),
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
                    "inputs": _templates(inputs),
                },
            }
        ]
    else:
        steps = _github_call(
            config,
            name="rebuild",
            url=f"{settings.github_api_url}/repos/{repo}/actions/workflows/{source['workflow']}/dispatches",
            body={"ref": source["branch"], "inputs": inputs},
            refused=f"GitHub refused to dispatch {source['workflow']} in {repo}",
        )
    sources = _soak_sources(watched, image.enrolment["rebuildDelay"])
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
            "args": [{"name": key, "value": value} for key, value in _templates(inputs).items()],
        }
    return {
        "apiVersion": KARGO_API,
        "kind": "Stage",
        "metadata": _meta(
            names.rebuild_name(image.name, watched.name), settings.project, labels, _ref_annotation(watched)
        ),
        "spec": spec,
    }


def _factory_event(config: Config, name: str, event_type: str, payload: dict) -> list[dict]:
    """Steps sending the factory repository a `repository_dispatch` event."""
    settings = config.kargo
    return _github_call(
        config,
        name=name,
        url=f"{settings.github_api_url}/repos/{settings.factory_repo}/dispatches",
        body={"event_type": event_type, "client_payload": payload},
        refused=f"GitHub refused the {event_type} dispatch",
    )


def _github_call(config: Config, *, name: str, url: str, body: dict, refused: str) -> list[dict]:
    """An `http` step calling GitHub: any 2xx succeeds; a refusal fails the promotion with GitHub's
    own message (Kargo shows `HTTP (422) response met failure criteria: "<message>"`); rate
    limits and 5xx are polled until the retry timeout. `refused` opens the failure message."""
    settings = config.kargo
    token = secret(settings.token_secret_name, settings.token_secret_key).template()
    headers = [{"name": "Authorization", "value": f"Bearer {token}"}]
    headers += [{"name": key, "value": value} for key, value in GITHUB_HEADERS]
    headers.append({"name": "Content-Type", "value": "application/json"})
    headers.append({"name": "User-Agent", "value": "image-factory"})
    return [
        {
            "uses": "http",
            "as": name,
            "config": {
                "method": "POST",
                "url": url,
                "headers": headers,
                "body": json_body(body),
                "timeout": "30s",
                "pollInterval": POLL_INTERVAL,
                "successExpression": SUCCESS,
                "failureExpression": REFUSED,
                "errorExpression": f"{string(refused + ': ')} + ({MESSAGE} ?? 'no message')",
            },
            "retry": RETRY,
        }
    ]


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
        "metadata": _meta(argo.name or settings.project, argo.namespace, annotations=COMPARE_OPTIONS),
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


def check_unique(objects: list[dict], seen: set[tuple[str, str | None, str]] | None = None) -> None:
    """Fails on two objects of the same kind and name (also across calls sharing `seen`)."""
    seen = set() if seen is None else seen
    for item in objects:
        key = (item["kind"], item["metadata"].get("namespace"), item["metadata"]["name"])
        if key in seen:  # names carry hashes of what they stand for: this is a bug, not input
            raise AssertionError(f"two generated objects named {key}")
        seen.add(key)


def charts(
    config: Config, state: State, keys: dict[str, str] | None = None
) -> list[tuple[str, Callable[[], list[dict]]]]:
    """The Project in `kargo.k8s.yaml`, with the Warehouses and Stages while they fit in one file
    (`kargo.objectsPerFile`), else those spread over `kargo-pipelines-N-of-M.k8s.yaml`; and the
    ArgoCD Application in a file of its own, applied once by hand. `keys`: the public keys
    images.yaml names, by path (`signatures.public_keys`). Pure Python: each chart's objects
    are built when asked for, one chart at a time, names checked across all of them.

    Bounded files keep the peak memory of both Python and Node.js low on a large fleet (~1 MB of
    YAML each by default).
    """
    project = project_manifests(config)
    files = shards(watched_images(state), config.kargo.objects_per_file)
    seen: set = set()

    def objects(head: list[dict], parts: list[Part]) -> Callable[[], list[dict]]:
        def build() -> list[dict]:
            made = [*head]
            for part in parts:
                made += part_manifests(config, state, part, keys or {})
            check_unique(made, seen)
            return made

        return build

    made: list[tuple[str, Callable[[], list[dict]]]] = []
    if len(files) == 1:
        made.append((KARGO_CHART, objects(project, files[0])))
    else:
        made.append((KARGO_CHART, objects(project, [])))
        width = len(str(len(files)))
        for number, parts in enumerate(files, 1):
            made.append((f"{KARGO_CHART}-pipelines-{number:0{width}d}-of-{len(files)}", objects([], parts)))
    application = argocd_application(config, f"{KARGO_CHART}*.k8s.yaml")
    made.append((ARGOCD_CHART, lambda: [application]))
    return made
