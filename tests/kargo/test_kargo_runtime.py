"""Every generated Stage, promoted the way Kargo v1.11.2 runs it (tests/kargo_model/ models
Kargo's expression evaluation, step runners and step loop, citing its source).

Schema-valid is not runtime-valid: these tests evaluate each step's config as Kargo does, run
the step against a stand-in GitHub for each outcome (accepted, refused, a transport error, rate
limits) and check what GitHub receives. The bundled example and a factory with every feature
are both covered.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import dataclass

import pytest

from image_factory.discovery.discover import discover, load_model
from image_factory.enrolment.durations import parse_duration
from image_factory.errors import FactoryError
from image_factory.kargo import names as kargo_names
from image_factory.trust.signatures import public_keys

from ..conftest import REPO_ROOT
from ..cosign_signer import new_key, public_pem
from ..kargo_model import Freight, HttpResponse, Image, evaluate_verification_args, run_promotion
from ..kargo_model.go import go_parse_duration

sys.path.insert(0, str(REPO_ROOT / "cdk8s"))
import kargo_manifests

TOKEN = "ghs_" + "t" * 36
GITHUB_MESSAGE = 'Unexpected inputs provided: ["bases"]'
# GitHub's REST description of POST /repos/{owner}/{repo}/dispatches (api.github.com 2022-11-28):
# event_type "Must be 100 characters or fewer"; client_payload "The maximum number of top-level
# properties is 10. The total size of the JSON payload must be less than 64KB."
EVENT_TYPE_MAX = 100
CLIENT_PAYLOAD_MAX_PROPERTIES = 10
CLIENT_PAYLOAD_MAX_BYTES = 64 * 1024

EVERY_FEATURE = """
kargo:
  project: platform-images
  factoryRepo: acme/factory
  tokenSecret: {name: gh-dispatch, key: pat}
  verifyRegistrySecret: pull-secret
  webhookReceivers:
    - {name: ghcr, type: github, secretName: ghcr-hook}
    - {name: hub, type: dockerhub, secretName: hub-hook}
  scanner:
    image: docker.io/aquasec/trivy:0.58.1@sha256:1111111111111111111111111111111111111111111111111111111111111111
    reporterImage: python:3.12-slim@sha256:2222222222222222222222222222222222222222222222222222222222222222
    dbRepository: registry.internal.example/aquasec/trivy-db:2
images:
  - name: base
    registry: ghcr.io
    repository: acme/base
    tag: "1"
    rebuildDelay: 36h
    scan: {enabled: true, expedite: high, hold: critical}
    source: {provider: local, repo: base, dockerfile: Dockerfile, workflow: build-base.yml}
  - name: app
    registry: ghcr.io
    repository: acme/app
    autoRebuild: false
    rebuildDelay: 90m
    source: {provider: github, repo: acme/app, branch: release/2.x, dockerfile: Dockerfile, workflow: build.yml}
    test: {command: /app --self-test, analysisTemplates: [smoke-test]}
  - name: python
    registry: docker.io
    repository: library/python
    tag: 3.12-slim
    verify: {key: keys/python.pub, transparencyLog: false}
  - name: distroless
    registry: gcr.io
    repository: distroless/static
    tag: nonroot
    verify:
      certificateIdentity: keyless@distroless.iam.gserviceaccount.com
      certificateOidcIssuer: https://accounts.google.com
  - name: redis
    registry: docker.io
    repository: library/redis
    tag: "7"
    verify: {key: {secret: cosign-redis}, required: false}
  - name: nginx
    registry: docker.io
    repository: library/nginx
    warehouse: {imageSelectionStrategy: Digest, constraint: 1.27-alpine}
  - name: exporter
    registry: quay.io
    repository: prometheus/node-exporter
    warehouse:
      allowTagsRegexes: ['^v1\\.[0-9]+\\.[0-9]+$']
      imageSelectionStrategy: SemVer
"""


@dataclass(frozen=True)
class Generated:
    objects: list[dict]
    secrets: dict[str, dict[str, str]]
    branches: dict[str, str]  # managed image → the branch its build workflow runs on
    delays: dict[str, set[str]]  # watched reference → the rebuildDelays of the images built on it
    factory_repo: str

    def of_kind(self, kind: str) -> dict[str, dict]:
        return {o["metadata"]["name"]: o for o in self.objects if o["kind"] == kind}

    @property
    def warehouses(self) -> dict[str, list[str]]:
        """Warehouse name → the repoURLs it subscribes to (what `imageFrom` resolves through)."""
        return {
            name: [s["image"]["repoURL"] for s in w["spec"]["subscriptions"]]
            for name, w in self.of_kind("Warehouse").items()
        }

    def stages(self, *, steps: str | None = None) -> list[dict]:
        """Stages with promotion steps, those using step `steps` if given."""
        found = []
        for stage in self.of_kind("Stage").values():
            used = [
                step["uses"] for step in stage["spec"].get("promotionTemplate", {}).get("spec", {}).get("steps", [])
            ]
            if used and (steps is None or steps in used):
                found.append(stage)
        return found

    def freight(self, stage: dict) -> Freight:
        """A new Freight of the Stage's Warehouse: the tag it watches (or a matching one), a digest."""
        origin = stage["spec"]["requestedFreight"][0]["origin"]["name"]
        (subscription,) = self.of_kind("Warehouse")[origin]["spec"]["subscriptions"]
        image = subscription["image"]
        tag = image.get("constraint") or "v1.8.2"
        digest = "sha256:" + hashlib.sha256(origin.encode()).hexdigest()
        name = hashlib.sha1(f"{origin}@{digest}".encode()).hexdigest()
        return Freight(name, (Image(image["repoURL"], tag, digest),), origin)

    def promote(self, stage: dict, http) -> tuple:
        freight = self.freight(stage)
        result = run_promotion(stage, freight=freight, warehouses=self.warehouses, secrets=self.secrets, http=http)
        return result, freight


def _generate(config, state, keys) -> Generated:
    settings = config.kargo
    return Generated(
        kargo_manifests.factory_manifests(config, state, keys),
        {settings.token_secret_name: {settings.token_secret_key: TOKEN}},
        {name: image.enrolment["source"]["branch"] for name, image in state.images.items()},
        {
            ref: {state.images[d.image].enrolment["rebuildDelay"] for d in base.dependents}
            for ref, base in state.base_images.items()
        },
        settings.factory_repo,
    )


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Generated:
    root = tmp_path_factory.mktemp("example")
    shutil.copy(REPO_ROOT / "images.yaml", root / "images.yaml")
    shutil.copytree(REPO_ROOT / "examples", root / "examples")
    shutil.copytree(REPO_ROOT / "state", root / "state")
    config, state = load_model(root)
    return _generate(config, state, public_keys(config, root))


@pytest.fixture(scope="module")
def every_feature(tmp_path_factory) -> Generated:
    return _generate(*every_feature_model(tmp_path_factory.mktemp("every-feature")))


def every_feature_model(root):
    (root / "images.yaml").write_text(EVERY_FEATURE)
    (root / "keys").mkdir()
    (root / "keys/python.pub").write_bytes(public_pem(new_key()))
    (root / "base").mkdir()
    (root / "base/Dockerfile").write_text(
        "FROM python:3.12-slim AS build\nFROM gcr.io/distroless/static:nonroot\nCOPY --from=redis:7 /x /x\n"
    )
    checkouts = root.parent / f"{root.name}-checkouts"
    (checkouts / "acme/app").mkdir(parents=True)
    (checkouts / "acme/app/Dockerfile").write_text("FROM ghcr.io/acme/base:1\nCOPY --from=nginx:1.27-alpine /a /a\n")
    discover(root, checkouts)
    config, state = load_model(root)
    return config, state, public_keys(config, root)


@pytest.fixture(params=["example", "every_feature"])
def generated(request) -> Generated:
    return request.getfixturevalue(request.param)


def accepted(request):
    return HttpResponse(204)


def refused(request):
    body = json.dumps({"message": GITHUB_MESSAGE, "documentation_url": "https://docs.github.com/rest"})
    return HttpResponse(422, body=body, content_type="application/json; charset=utf-8")


def unreachable(request):
    raise ConnectionError("dial tcp: i/o timeout")


def answers(*responses):
    """A GitHub that answers each request with the next of `responses` (an exception is raised)."""
    queue = list(responses)

    def handler(request):
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler


@dataclass(frozen=True)
class DelayOf:
    """Equal to a duration text (as images.yaml writes them) of `seconds`."""

    seconds: float

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and parse_duration(other).total_seconds() == self.seconds


def expected_body(generated: Generated, stage: dict, freight: Freight) -> dict:
    """What GitHub must receive from this Stage, from its labels and the Freight: no picture of
    the manifest, only of what the factory needs."""
    labels = stage["metadata"]["labels"]
    ref = stage["metadata"]["annotations"][kargo_names.REF_ANNOTATION]
    (image,) = freight.images
    role = labels[kargo_names.ROLE]
    if role == "record":
        payload = {"image": ref, "repoURL": image.repo_url, "tag": image.tag, "digest": image.digest}
        return {"event_type": "base-image-updated", "client_payload": {**payload, "freight": freight.name}}
    if role == "verified":
        payload = {"image": ref, "digest": image.digest, "freight": freight.name}
        return {"event_type": "base-image-verified", "client_payload": payload}
    if role == "soak":
        # The delay reported is the soak Kargo enforces, and the rebuildDelay of an image built on it.
        (request,) = stage["spec"]["requestedFreight"]
        soaked = go_parse_duration(request["sources"].get("requiredSoakTime", "0s"))
        assert soaked in {parse_duration(delay).total_seconds() for delay in generated.delays[ref]}
        payload = {"image": ref, "digest": image.digest, "delay": DelayOf(soaked)}
        return {"event_type": "base-image-soaked", "client_payload": payload}
    assert role == "rebuild"
    image_name = labels[kargo_names.IMAGE]
    return {"ref": generated.branches[image_name], "inputs": {"image": image_name, "base": ref, "digest": image.digest}}


def test_every_stage_sends_github_the_freight_it_promotes(generated):
    stages = generated.stages(steps="http")
    assert stages
    for stage in stages:
        result, freight = generated.promote(stage, accepted)
        name = stage["metadata"]["name"]
        assert result.phase == "Succeeded", (name, result.message, [(s.alias, s.message) for s in result.steps])
        (request,) = result.requests
        assert request.method == "POST"
        assert request.header("Authorization") == f"Bearer {TOKEN}"
        assert request.header("Content-Type") == "application/json"
        assert request.header("X-GitHub-Api-Version") == "2022-11-28"
        body = json.loads(request.body)
        assert body == expected_body(generated, stage, freight), name
        if request.url.endswith(f"/repos/{generated.factory_repo}/dispatches"):  # repository_dispatch
            assert len(body["event_type"]) <= EVENT_TYPE_MAX
            assert len(body["client_payload"]) <= CLIENT_PAYLOAD_MAX_PROPERTIES
            assert len(json.dumps(body["client_payload"]).encode()) < CLIENT_PAYLOAD_MAX_BYTES
            assert all(isinstance(value, str) for value in body["client_payload"].values()), body
        for step in result.steps:  # each evaluated config passed its step's schema to get here
            assert isinstance(step.config["body"], str)


def with_run_details(request):
    """GitHub's answer to a workflow dispatch that asked for the run's details: 200, and the run."""
    body = json.dumps({"workflow_run_id": 42, "run_url": "https://api.github.com/repos/a/b/actions/runs/42"})
    return HttpResponse(200, body=body, content_type="application/json; charset=utf-8")


def test_a_dispatch_answered_200_with_the_runs_details_succeeds_too(generated):
    """Any 2xx is GitHub accepting the dispatch: a 200 with run details must not be polled and sent
    again for an hour, as a success expression of exactly 204 would."""
    for stage in generated.stages(steps="http"):
        result, _ = generated.promote(stage, with_run_details)
        assert result.phase == "Succeeded", (stage["metadata"]["name"], result.message)
        assert len(result.requests) == 1


def test_a_soak_stage_tells_the_factory_the_digest_it_soaked(generated):
    """What events.yml reads from a base-image-soaked dispatch (image, then `dispatch --base`), as
    Kargo sends it for the Freight that soaked: one per distinct delay of the images without a
    Stage of their own."""
    soaks = [s for s in generated.stages() if s["metadata"]["labels"][kargo_names.ROLE] == "soak"]
    assert soaks
    for stage in soaks:
        result, freight = generated.promote(stage, accepted)
        assert result.phase == "Succeeded", result.message
        (request,) = result.requests
        assert request.url.endswith(f"/repos/{generated.factory_repo}/dispatches")
        body = json.loads(request.body)
        assert body["event_type"] == "base-image-soaked"
        assert body["client_payload"]["image"] == stage["metadata"]["annotations"][kargo_names.REF_ANNOTATION]
        assert body["client_payload"]["digest"] == freight.images[0].digest
        assert parse_duration(body["client_payload"]["delay"])  # a duration `dispatch` can read
    delays = {
        (
            s["metadata"]["labels"][kargo_names.WATCHED],
            s["spec"]["requestedFreight"][0]["sources"].get("requiredSoakTime"),
        )
        for s in soaks
    }
    assert len(delays) == len(soaks)  # never two Stages for one (base, delay)


def test_a_refusal_fails_the_promotion_at_once_with_githubs_message(generated):
    for stage in generated.stages(steps="http"):
        result, _ = generated.promote(stage, refused)
        assert result.phase == "Failed"
        assert len(result.requests) == 1  # a refusal is never re-sent
        (step,) = result.steps
        assert step.status == "Failed"
        assert "HTTP (422) response met failure criteria: " in step.message
        assert "GitHub refused" in step.message and GITHUB_MESSAGE.replace('"', '\\"') in step.message


@pytest.mark.parametrize(
    "status, headers",
    [
        (401, {}),
        (404, {}),
        (403, {"X-RateLimit-Remaining": "4999"}),  # a missing permission, not a limit
    ],
)
def test_other_refusals_fail_too(every_feature, status, headers):
    (stage, *_) = every_feature.stages(steps="http")
    body = json.dumps({"message": "Bad credentials"})
    result, _ = every_feature.promote(stage, answers(HttpResponse(status, headers, body, "application/json")))
    assert result.phase == "Failed" and len(result.requests) == 1
    assert f"HTTP ({status}) response met failure criteria" in result.message
    assert "Bad credentials" in result.message


def test_a_transport_error_is_retried_not_fatal(generated):
    for stage in generated.stages(steps="http"):
        flaky = answers(*[ConnectionError("connection reset by peer")] * 4, HttpResponse(204))
        result, _ = generated.promote(stage, flaky)
        assert result.phase == "Succeeded", result.message
        assert len(result.requests) == 5


def test_half_an_hour_of_github_being_unreachable_is_ridden_out(every_feature):
    """Kargo retries an errored step after the controller's backoff (milliseconds at first):
    the threshold has to be high for the retries to span an outage."""
    (stage, *_) = every_feature.stages(steps="http")

    def outage(request):
        if request.at < 30 * 60:
            raise ConnectionError("dial tcp 140.82.112.6:443: connect: connection refused")
        return HttpResponse(204)

    result, _ = every_feature.promote(stage, outage)
    assert result.phase == "Succeeded", result.message
    assert result.requests[-1].at >= 30 * 60


def test_a_github_that_stays_unreachable_errors_the_promotion(every_feature):
    (stage, *_) = every_feature.stages(steps="http")
    result, _ = every_feature.promote(stage, unreachable)
    assert result.phase == "Errored"
    assert len(result.requests) == 20
    assert "met error threshold of 20" in result.message
    assert result.requests[-1].at < 60 * 60


@pytest.mark.parametrize(
    "limited",
    [
        HttpResponse(
            403,
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1767225600"},
            '{"message": "API rate limit exceeded"}',
            "application/json",
        ),
        HttpResponse(
            403, {"Retry-After": "60"}, '{"message": "You have exceeded a secondary rate limit"}', "application/json"
        ),
        HttpResponse(429, {"Retry-After": "30"}),
        HttpResponse(502, {}, "<html>Bad gateway</html>", "text/html"),
    ],
    ids=["primary-rate-limit", "secondary-rate-limit", "429", "502"],
)
def test_rate_limits_and_server_errors_are_waited_out_then_sent_again(every_feature, limited):
    for stage in every_feature.stages(steps="http"):
        result, freight = every_feature.promote(stage, answers(limited, limited, HttpResponse(204)))
        assert result.phase == "Succeeded", result.message
        first, second, third = result.requests
        assert second.at - first.at >= 60 and third.at - second.at >= 60  # pollInterval: 1m
        assert first.body == second.body == third.body  # the same dispatch, sent again
        assert json.loads(third.body) == expected_body(every_feature, stage, freight)


def test_a_github_that_keeps_limiting_errors_the_promotion_within_the_hour(every_feature):
    (stage, *_) = every_feature.stages(steps="http")
    result, _ = every_feature.promote(stage, lambda request: HttpResponse(429))
    assert result.phase == "Errored"
    assert "timed out after 1h0m0s" in result.message
    assert 55 <= len(result.requests) <= 62  # once a minute for an hour


def test_every_if_gives_a_bool(generated):
    for stage in generated.stages():
        for outcome in (accepted, refused, unreachable):
            result, _ = generated.promote(stage, outcome)
            assert all(isinstance(value, bool) for value in result.if_values.values()), result.if_values


def test_advisory_and_scan_stages_only_note_the_digest(every_feature):
    noting = every_feature.stages(steps="compose-output")
    assert sorted(s["metadata"]["labels"][kargo_names.ROLE] for s in noting) == ["scan", "scan", "scan", "verify"]
    for stage in noting:
        result, freight = every_feature.promote(stage, None)
        assert result.phase == "Succeeded" and result.requests == []
        output = "candidate" if stage["metadata"]["labels"][kargo_names.ROLE] == "verify" else "scanned"
        assert result.state[output] == {"digest": freight.images[0].digest}


def test_every_verification_argument_is_a_string_about_the_freight(generated):
    verifying = [s for s in generated.of_kind("Stage").values() if "verification" in s["spec"]]
    assert verifying
    for stage in verifying:
        freight = generated.freight(stage)
        args = evaluate_verification_args(stage, freight, generated.warehouses)
        assert args["digest"] == freight.images[0].digest
        if stage["metadata"]["labels"][kargo_names.ROLE] == "rebuild":
            assert args == {
                "image": stage["metadata"]["labels"][kargo_names.IMAGE],
                "base": stage["metadata"]["annotations"][kargo_names.REF_ANNOTATION],
                "digest": freight.images[0].digest,
            }


def test_the_every_feature_factory_has_every_kind_of_stage(every_feature):
    roles = sorted(s["metadata"]["labels"][kargo_names.ROLE] for s in every_feature.of_kind("Stage").values())
    assert set(roles) == {"record", "soak", "rebuild", "verify", "verified", "scan"}
    numeric = [s for s in every_feature.stages() if every_feature.freight(s).images[0].tag == "7"]
    assert numeric  # redis:7: a tag Kargo would coerce to a number outside quote()
    for stage in numeric:
        result, _ = every_feature.promote(stage, accepted)
        if stage["metadata"]["labels"][kargo_names.ROLE] == "record":
            assert json.loads(result.requests[0].body)["client_payload"]["tag"] == "7"


def test_text_that_would_break_out_of_a_literal_stays_text(tmp_path):
    """A branch written to escape its string literal (state edited by hand: images.yaml refuses it)
    is sent as that branch; nothing in it is evaluated."""
    config, state, keys = every_feature_model(tmp_path)
    hostile = "main', 'ref': secret('gh-dispatch').pat, 'x': '"
    state.images["app"].enrolment["source"]["branch"] = hostile
    generated = _generate(config, state, keys)
    stages = [s for s in generated.stages(steps="http") if s["metadata"]["labels"].get(kargo_names.IMAGE) == "app"]
    assert stages
    for stage in stages:
        result, _ = generated.promote(stage, accepted)
        body = json.loads(result.requests[0].body)
        assert body["ref"] == hostile and TOKEN not in result.requests[0].body


@pytest.mark.parametrize("char", ["\x7f", "\x9f", "\ufffe", "${{"])
def test_the_generator_refuses_text_kargo_would_run_or_could_not_read_back(tmp_path, char):
    """Defence in depth beside validate: a branch holding a delimiter, or a character Kargo's YAML
    read-back refuses (the step would run with no configuration and send nothing), is not
    written into any Stage."""
    config, state, keys = every_feature_model(tmp_path)
    state.images["app"].enrolment["source"]["branch"] = f"main{char}"
    why = r"(U\+[0-9A-F]{4}, which Kargo's YAML read-back|'\$\{\{', which Kargo would read)"
    with pytest.raises(FactoryError, match=r"refusing to generate Stage app-on-.*'main.*' holds " + why):
        _generate(config, state, keys)
