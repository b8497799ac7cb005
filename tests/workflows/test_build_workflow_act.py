""".github/workflows/build.yml run end to end by act, the way the factory and Kargo dispatch it.

Every pinned action is replaced by its stand-in (tests/standins.py); the stand-ins do the real
work where it runs here: a real Docker engine builds the image honouring every pin and build arg
and runs the image's test, a real registry receives the candidate by digest, and the promote job
moves the tag with the tool itself. GitHub is a stub that records the `image-built` report.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil

import pytest
import requests
import yaml
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, Encoding, PrivateFormat

from image_factory.cli import main

from .. import cosign_signer
from ..conftest import commit, copy_project, git, with_origin
from ..registry_server import OCI_INDEX, Registry
from ..standins import StandIns, run_act
from .test_workflows import readme_team_build_workflow
from .test_workflows_act import act

pytestmark = pytest.mark.slow  # each test runs build.yml under act with a Docker engine

TOKEN = "ghs_" + "f" * 36  # long: act masks secret values in its output
STALE = "sha256:" + "5" * 64
TOOL_PATHS = ["action", "schemas", "cdk8s", "requirements", "pyproject.toml", "README.md", ".github"]


def images_yaml(
    host: str,
    test_command: str,
    api_url: str = "https://api.github.com",
    child: bool = True,
    key: bool = False,
    cache: str | None = None,
) -> str:
    # Not github.com (a stand-in GitHub): like GitHub Enterprise Server, keyless needs a Sigstore of its own.
    private = "" if api_url == "https://api.github.com" else SIGSTORE
    return f"""
kargo: {{factoryRepo: acme/factory, githubApiUrl: "{api_url}"}}
{private}insecureRegistries: ["{host}"]
images:
  - name: app
    registry: "{host}"
    repository: team/app
    tag: "1"
{"    signing: {key: keys/app.pub}" if key else ""}
    source:
      provider: local
      repo: app
      dockerfile: Dockerfile
      workflow: build.yml
      buildArgs: {{BASE_TAG: "1"}}
{f"      buildCache: {cache}" if cache else ""}
    test: {{command: {json.dumps(test_command)}}}
""" + (CHILD.format(host=host) if child else "")


SIGSTORE = (
    "sigstore: {fulcioUrl: https://fulcio.acme.example, rekorUrl: https://rekor.acme.example,"
    " tufMirror: https://tuf.acme.example, tufRoot: sigstore/root.json}\n"
)
TUF_ROOT = b'{"signed": {"_type": "root", "version": 1}, "signatures": []}\n'

CHILD = """  - name: child
    registry: "{host}"
    repository: team/child
    tag: "1"
    source:
      provider: local
      repo: child
      dockerfile: Dockerfile
      workflow: build.yml
      buildArgs: {{PARENT_TAG: "1"}}
"""


@pytest.fixture
def factory_run(tmp_path, docker_engine, httpserver):
    """A factory repository building `app` (a local source) on a busybox base in a real registry."""
    (tmp_path / "registry").mkdir()
    registry = Registry(tmp_path / "registry")
    base = docker_engine.busybox_image(registry)
    work = tmp_path / "factory"
    work.mkdir()
    copy_project(work, TOOL_PATHS)
    (work / "app").mkdir()
    # Discovery resolves the FROM with source.buildArgs (BASE_TAG=1); a build without them would
    # look for tag 0, which does not exist.
    (work / "app/Dockerfile").write_text(
        f"ARG BASE_TAG=0\nFROM {registry.host}/base/busybox:${{BASE_TAG}}\nRUN echo built > /hello\n"
    )
    (work / "child").mkdir()
    # a managed parent, named through a build arg, and a watched base
    (work / "child/Dockerfile").write_text(
        f"ARG PARENT_TAG=0\nFROM {registry.host}/team/app:${{PARENT_TAG}}\n"
        f"COPY --from={registry.host}/base/busybox:1 /bin/busybox /bin/busybox-copy\n"
    )
    reports: list[dict] = []
    answers: list[int] = []  # what the stand-in GitHub answers before its 204s (run.answers)

    def receive(request):
        from werkzeug import Response

        reports.append({"path": request.path, "headers": dict(request.headers), "body": json.loads(request.data)})
        return Response(status=answers.pop(0) if answers else 204)

    for path in ("/repos/acme/factory/dispatches", "/repos/acme/factory/actions/workflows/build.yml/dispatches"):
        httpserver.expect_request(path, method="POST").respond_with_handler(receive)

    secrets: dict[str, str] = {}

    def run(test_command: str, inputs: dict[str, str], key=None, cache=None):
        """With `key`, app's builds are signed with it (images.yaml signing.key, the secret)."""
        api = httpserver.url_for("").rstrip("/")
        if key is not None:
            (work / "keys").mkdir(exist_ok=True)
            (work / "keys/app.pub").write_bytes(cosign_signer.public_pem(key))
            pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"pw")).decode()
            secrets.update(COSIGN_PRIVATE_KEY=pem, COSIGN_PASSWORD="pw")
        (work / "images.yaml").write_text(
            images_yaml(registry.host, test_command, api, key=key is not None, cache=cache)
        )
        (work / "sigstore").mkdir(exist_ok=True)
        (work / "sigstore/root.json").write_bytes(TUF_ROOT)
        shutil.rmtree(work / "state", ignore_errors=True)
        assert main(["discover", "--root", str(work)]) == 0
        old = "2026-01-01T00:00:00Z"
        ref = f"{registry.host}/base/busybox:1"
        # State knows an older digest (not in the registry): only Kargo's digest builds.
        assert main(["record-update", "--root", str(work), "--image", ref, "--digest", STALE, "--seen-at", old]) == 0
        if not (work / ".git").exists():
            git(work, "init", "--quiet", "--initial-branch=main")
        commit(work, "factory")
        return dispatch(inputs)

    def dispatch(inputs: dict[str, str]):
        """build.yml dispatched in the factory as it stands (workflow_dispatch with `inputs`)."""
        folder = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
        return dispatch_build(work, folder, httpserver, docker_engine, inputs, secrets)

    run.work, run.dispatch, run.answers, run.secrets = work, dispatch, answers, secrets
    yield run, registry, base, reports
    registry.stop()


def dispatch_build(work, folder, httpserver, engine, inputs: dict[str, str], secrets=None, mapped=None):
    """build.yml of the factory at `work` dispatched (workflow_dispatch with `inputs`) under act, with
    the stand-ins, the real engine and the stand-in GitHub. `secrets` reach act through its
    environment; `mapped` ones as `-s NAME=VALUE` only, as GitHub gives a secret: only where the
    workflow maps it. The result and the stand-ins' records."""
    secrets, mapped = dict(secrets or {}), dict(mapped or {})
    standins = StandIns(folder, {"acme/factory": work})
    standins.folder.mkdir()
    result = run_act(
        work,
        "workflow_dispatch",
        ".github/workflows/build.yml",
        standins,
        "--env",
        "GITHUB_REPOSITORY=acme/factory",
        "--env",
        f"GITHUB_API_URL={httpserver.url_for('').rstrip('/')}",
        "-s",
        "IMAGE_FACTORY_TOKEN",
        *[arg for name in secrets for arg in ("-s", name)],
        *[arg for name, value in mapped.items() for arg in ("-s", f"{name}={value}")],
        env={**engine.env(), "IMAGE_FACTORY_TOKEN": TOKEN, **secrets},
        payload={"inputs": inputs},
        timeout=900,
    )
    return result, standins


def tagged(registry: Registry, repository: str = "team/app", tag: str = "1") -> str | None:
    answer = requests.get(
        f"http://{registry.host}/v2/{repository}/manifests/{tag}",
        headers={"Accept": f"{OCI_INDEX}, application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    )
    return answer.headers["Docker-Content-Digest"] if answer.status_code == 200 else None


def test_a_kargo_dispatched_rebuild_is_built_pinned_tested_signed_tagged_and_reported(factory_run):
    run, registry, base, reports = factory_run
    ref = f"{registry.host}/base/busybox:1"
    result, standins = run(
        "grep -q built /hello && echo candidate-tested", {"image": "app", "base": ref, "digest": base}, cache="registry"
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]

    (build,) = standins.records("docker/build-push-action")
    assert build["inputs"]["build-contexts"].strip() == f"{ref}=docker-image://{registry.host}/base/busybox@{base}"
    assert build["inputs"]["build-args"].strip() == "BASE_TAG=1"
    assert build["inputs"]["platforms"] == "linux/amd64"  # what the pinned base is published for
    # images.yaml's source.buildCache: registry, handed to BuildKit as the action takes it
    cache = f"type=registry,ref={registry.host}/team/app:buildcache"
    assert (build["inputs"]["cache-from"], build["inputs"]["cache-to"]) == (cache, f"{cache},mode=max")
    assert build["dockerfile"].splitlines()[1] == f"FROM {registry.host}/base/busybox@{base}"
    digest = build["digest"]
    assert "candidate-tested" in output  # the image's test ran in the candidate, on the real engine
    assert f"testing {registry.host}/team/app@{digest} for linux/amd64" in output  # the platform it tested
    # keyless by default, with images.yaml's own Sigstore (a GitHub Enterprise Server's factory): its
    # TUF root first, as images.yaml names it, then its Fulcio and Rekor
    initialize, signed = standins.records("cosign")
    assert initialize["argv"][:3] == ["initialize", "--mirror", "https://tuf.acme.example"]
    assert initialize["root"] == hashlib.sha256(TUF_ROOT).hexdigest()
    assert signed["argv"] == [
        "sign",
        "--yes",
        "--fulcio-url",
        "https://fulcio.acme.example",
        "--rekor-url",
        "https://rekor.acme.example",
        f"{registry.host}/team/app@{digest}",
    ]
    assert tagged(registry) == digest  # the promote job moved the tag
    assert tagged(registry, tag="1-r1") == digest  # and gave the rebuild its own tag, never to move
    assert f"{registry.host}/team/app:1-r1 → {digest} (this rebuild's own tag, never moved)" in output
    (report,) = reports
    assert report["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert report["body"]["event_type"] == "image-built"
    payload = report["body"]["client_payload"]
    assert {key: payload[key] for key in ("image", "digest", "result", "signed", "error", "bases")} == {
        "image": "app",
        "digest": digest,
        "result": "success",
        "signed": True,
        "error": "",
        "bases": {ref: base},
    }


def test_build_secrets_reach_the_run_that_mounts_them_and_nothing_else(factory_run, tmp_path):
    """A team's BuildKit secret (a private index token), passed as BUILD_SECRETS, reaches docker/
    build-push-action's `secrets`: the engine's BuildKit mounts it for the RUN that asks, and it is in
    no layer, no blob the registry holds and no log (never a build argument: provenance records those)."""
    run, registry, base, _ = factory_run
    secret = "npm-s3cr3t-value-" + "7" * 24
    run.secrets["BUILD_SECRETS"] = f"NPM_TOKEN={secret}\nOTHER=unused\n"
    (run.work / "app/Dockerfile").write_text(
        f"ARG BASE_TAG=0\nFROM {registry.host}/base/busybox:${{BASE_TAG}}\nRUN echo built > /hello\n"
        # what an npm install does with it: reads it during this RUN only
        "RUN --mount=type=secret,id=NPM_TOKEN sha256sum /run/secrets/NPM_TOKEN | cut -d' ' -f1 > /token.sha256\n"
    )
    seen = hashlib.sha256(secret.encode()).hexdigest()
    test = f'test "$(cat /token.sha256)" = {seen} && test ! -e /run/secrets/NPM_TOKEN && echo secret-was-mounted'
    ref = f"{registry.host}/base/busybox:1"
    result, standins = run(test, {"image": "app", "base": ref, "digest": base})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    assert "secret-was-mounted" in output  # the candidate holds the hash the RUN computed from the secret
    (build,) = standins.records("docker/build-push-action")
    assert "NPM_TOKEN" not in build["inputs"]["build-args"]
    assert secret not in output
    blobs = list((tmp_path / "registry").rglob("blobs/sha256/*/*/data"))
    assert len(blobs) > 4  # the base, the candidate's layers, config and attestations
    for blob in blobs:
        data = blob.read_bytes()
        data = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        assert secret.encode() not in data, blob


def test_a_failing_test_leaves_the_tag_and_reports_the_failure(factory_run):
    """Also: GitHub answers the report 502 first; the report step sends it again (under act, as
    workflow_dispatch runs it), so the factory still learns of the failure."""
    run, registry, base, reports = factory_run
    ref = f"{registry.host}/base/busybox:1"
    run.answers.append(502)
    result, standins = run("grep -q something-else /hello", {"image": "app", "base": ref, "digest": base})
    output = result.stdout + result.stderr
    assert standins.records("docker/build-push-action")[0]["digest"]
    assert standins.records("cosign") == []  # nothing signed
    assert tagged(registry) is None  # no tag moved
    refused, report = reports
    assert (refused["path"], refused["body"]) == (report["path"], report["body"]) and run.answers == []
    assert "sending the report again in 2 s" in output
    payload = report["body"]["client_payload"]
    assert (payload["result"], payload["digest"], payload["error"]) == ("failure", "", "the test failed"), output[
        -4000:
    ]
    assert payload["bases"] == {ref: base}


FAKE_SHA = "0123456789abcdef0123456789abcdef01234567"


def test_a_team_calling_build_yml_as_the_readme_shows_gets_the_same_pinned_build(
    tmp_path, docker_engine, httpserver, request
):
    """workflow_call: docs/federation.md's team build workflow, dispatched the way Kargo does (base + digest),
    calls the factory's build.yml at a pinned commit (act maps that commit to this checkout)."""
    (tmp_path / "registry").mkdir()
    registry = Registry(tmp_path / "registry")
    request.addfinalizer(registry.stop)
    base = docker_engine.busybox_image(registry)
    ref = f"{registry.host}/base/busybox:1"
    factory, team = tmp_path / "factory", tmp_path / "team"
    factory.mkdir()
    copy_project(factory, TOOL_PATHS)
    text = images_yaml(registry.host, "grep -q built /hello && echo candidate-tested", child=False)
    text = text.replace("provider: local\n      repo: app", "provider: github\n      repo: acme/app")
    (factory / "images.yaml").write_text(text.replace("factoryRepo: acme/factory", "factoryRepo: acme/image-factory"))
    (team / ".github/workflows").mkdir(parents=True)
    # `COPY . /ctx`, as many Dockerfiles do: the build context must hold the team's files only
    (team / "Dockerfile").write_text(
        f"ARG BASE_TAG=0\nFROM {registry.host}/base/busybox:${{BASE_TAG}}\nRUN echo built > /hello\nCOPY . /ctx\n"
    )
    (team / "main.py").write_text("print('the team's code')\n")
    caller = readme_team_build_workflow().replace("<commit sha>", FAKE_SHA)
    (team / ".github/workflows/build.yml").write_text(caller)
    checkouts = tmp_path / "checkouts"
    shutil.copytree(team, checkouts / "acme/app")
    assert main(["discover", "--root", str(factory), "--source-root", str(checkouts)]) == 0
    seen = "2026-01-01T00:00:00Z"
    # State knows an older digest (not in the registry): a caller that dropped Kargo's would fail.
    assert main(["record-update", "--root", str(factory), "--image", ref, "--digest", STALE, "--seen-at", seen]) == 0
    for repo in (factory, team):
        git(repo, "init", "--quiet", "--initial-branch=main")
        commit(repo, "init")
    reports: list[dict] = []

    def receive(request):
        from werkzeug import Response

        reports.append(json.loads(request.data))
        return Response(status=204)

    httpserver.expect_request("/repos/acme/image-factory/dispatches", method="POST").respond_with_handler(receive)
    standins = StandIns(tmp_path, {"acme/image-factory": factory, "acme/app": team})
    result = run_act(
        team,
        "workflow_dispatch",
        ".github/workflows/build.yml",
        standins,
        f"--local-repository=acme/image-factory@{FAKE_SHA}={factory}",
        "--env",
        "GITHUB_REPOSITORY=acme/app",
        "--env",
        f"GITHUB_API_URL={httpserver.url_for('').rstrip('/')}",
        "-s",
        "IMAGE_FACTORY_TOKEN",
        env={**docker_engine.env(), "IMAGE_FACTORY_TOKEN": TOKEN},
        payload={"inputs": {"image": "app", "bases": "", "base": ref, "digest": base}},
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    (build,) = standins.records("docker/build-push-action")
    assert build["dockerfile"].splitlines()[1] == f"FROM {registry.host}/base/busybox@{base}"  # Kargo's digest
    assert build["inputs"]["build-args"].strip() == "BASE_TAG=1"
    assert "candidate-tested" in output
    assert tagged(registry) == build["digest"]
    (report,) = reports
    assert report["client_payload"]["result"] == "success"
    assert report["client_payload"]["bases"] == {ref: base}
    # the candidate as built: the team's files, none of the factory's (images.yaml, every team's state)
    candidate = f"{registry.host}/team/app@{build['digest']}"
    listed = docker_engine.docker("run", "--rm", "--network", "none", candidate, "ls", "-a", "/ctx").stdout.split()
    assert {"Dockerfile", "main.py", ".github"} <= set(listed)
    assert not {".image-factory", ".image-factory-code", "images.yaml", "state"} & set(listed), listed


def test_the_report_lands_in_state_and_the_cascade_dispatches_the_child(factory_run, tmp_path, monkeypatch):
    """build.yml reports image-built; events.yml (act, repository_dispatch) records it in state,
    pushes it, and dispatches the image built on it, pinned to the new digest."""
    run, registry, base, reports = factory_run
    ref = f"{registry.host}/base/busybox:1"
    # images.yaml: app's builds are signed with a key, so events.yml checks the signature itself
    key = cosign_signer.new_key()
    result, standins = run("grep -q built /hello", {"image": "app", "base": ref, "digest": base}, key=key)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    (report,) = reports
    built = standins.records("docker/build-push-action")[0]["digest"]
    (signed,) = standins.records("cosign")  # build.yml followed images.yaml: signed with the key
    assert signed["argv"][:4] == ["sign", "--yes", "--key", "env://COSIGN_PRIVATE_KEY"] and len(signed["signed"]) == 1
    work = run.work
    # Kargo's recording Stage reported the digest before its rebuild Stage dispatched the build.
    record = ["record-update", "--root", str(work), "--image", ref, "--digest", base]
    assert main([*record, "--seen-at", "2026-01-02T00:00:00Z"]) == 0
    commit(work, "state: Kargo saw the digest")
    origin = with_origin(work, tmp_path)
    # GitHub adds the sender: the account of the token that sent it
    payload = {"action": "image-built", "client_payload": report["body"]["client_payload"], "sender": {"login": "ci"}}
    monkeypatch.setenv("IMAGE_FACTORY_TOKEN", TOKEN)  # the factory's secret: dispatches the cascade
    code, output = act(work, "repository_dispatch", "events.yml", "-s", "IMAGE_FACTORY_TOKEN", payload=payload)
    assert code == 0, output[-6000:]
    state = yaml.safe_load(git(origin, "show", "main:state/images/app.yaml"))
    assert state["runtime"]["lastBuild"]["digest"] == built
    assert state["runtime"]["lastBuild"]["baseDigests"] == {ref: base}
    assert state["runtime"]["lastBuild"]["revisionTag"] == "1-r1"  # promote's tag, carried by the report
    cascade = [r for r in reports if r["path"].endswith("/actions/workflows/build.yml/dispatches")]
    (dispatched,) = cascade
    inputs = dispatched["body"]["inputs"]
    assert inputs["image"] == "child"
    assert json.loads(inputs["bases"]) == {f"{registry.host}/team/app:1": built, ref: base}

    # The factory's own dispatch of the child (inputs as sent, `bases` included) builds it on the
    # parent's new digest: a managed parent pinned like any base.
    git(work, "pull", "--quiet", "--ff-only", "origin", "main")
    result, standins = run.dispatch(inputs)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    (child,) = standins.records("docker/build-push-action")
    assert child["dockerfile"].splitlines()[1:] == [
        f"FROM {registry.host}/team/app@{built}",
        f"COPY --from={registry.host}/base/busybox@{base} /bin/busybox /bin/busybox-copy",
    ]
    assert child["inputs"]["build-args"].strip() == "PARENT_TAG=1"
    assert tagged(registry, "team/child") == child["digest"]
    final = reports[-1]["body"]["client_payload"]
    assert (final["image"], final["result"], final["digest"]) == ("child", "success", child["digest"])

    # Kargo's rebuild Stage for the child's watched base (base + digest): the managed parent is
    # pinned from state to its last build.
    result, standins = run.dispatch({"image": "child", "base": ref, "digest": base})
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    (again,) = standins.records("docker/build-push-action")
    assert again["dockerfile"].splitlines()[1] == f"FROM {registry.host}/team/app@{built}"
    assert reports[-1]["body"]["client_payload"]["bases"] == {f"{registry.host}/team/app:1": built, ref: base}


def test_a_build_that_cannot_resolve_its_bases_is_reported_as_a_failure(factory_run):
    """`child` before its parent was ever built: build-info refuses to float on the tag, and the
    factory still hears of the failure (under the bases it was dispatched with)."""
    run, registry, _, reports = factory_run
    result, standins = run("true", {"image": "child"})
    output = result.stdout + result.stderr
    assert "no digest to pin" in output and f"{registry.host}/team/app:1" in output
    assert standins.records("docker/build-push-action") == []  # nothing was built
    (report,) = reports
    payload = report["body"]["client_payload"]
    expected = ("child", "failure", "", "resolving the build (checkout, install, build-info) failed", {})
    assert (payload["image"], payload["result"], payload["digest"], payload["error"], payload["bases"]) == expected


def test_a_base_in_another_private_registry_is_pulled_after_the_callers_login(tmp_path, docker_engine, httpserver):
    """A base in a registry that needs its own login (Artifactory, another organisation's ghcr.io):
    the caller's BASE_REGISTRY_CREDENTIALS secret logs build.yml in before the platforms check and
    the build read it. Two real registries: the image's, and the base's with htpasswd auth."""
    (tmp_path / "registry").mkdir()
    (tmp_path / "private").mkdir()
    registry = Registry(tmp_path / "registry")
    private = Registry(tmp_path / "private", users={"reader": "pull-only-secret"})
    try:
        docker_engine.docker("login", private.host, "-u", "reader", "--password-stdin", stdin=b"pull-only-secret")
        base = docker_engine.busybox_image(private, "vendor/busybox")
        docker_engine.docker("logout", private.host)  # the workflow must log in itself
        work = tmp_path / "factory"
        work.mkdir()
        copy_project(work, TOOL_PATHS)
        (work / "app").mkdir()
        (work / "app/Dockerfile").write_text(f"FROM {private.host}/vendor/busybox:1\nRUN echo built > /hello\n")
        (work / "images.yaml").write_text(
            f"""
kargo: {{factoryRepo: acme/factory}}
insecureRegistries: ["{registry.host}", "{private.host}"]
images:
  - name: app
    registry: "{registry.host}"
    repository: team/app
    tag: "1"
    signing: {{key: keys/app.pub}}
    source: {{provider: local, repo: app, dockerfile: Dockerfile, workflow: build.yml}}
    test: {{command: "grep -q built /hello"}}
"""
        )
        key = cosign_signer.new_key()
        (work / "keys").mkdir()
        (work / "keys/app.pub").write_bytes(cosign_signer.public_pem(key))
        assert main(["discover", "--root", str(work)]) == 0
        git(work, "init", "--quiet", "--initial-branch=main")
        commit(work, "factory")
        httpserver.expect_request("/repos/acme/factory/dispatches", method="POST").respond_with_data("", status=204)
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"pw")).decode()
        logins = json.dumps({private.host: "reader:pull-only-secret"})
        ref = f"{private.host}/vendor/busybox:1"
        result, standins = dispatch_build(
            work,
            tmp_path / "run",
            httpserver,
            docker_engine,
            {"image": "app", "base": ref, "digest": base},
            {"COSIGN_PRIVATE_KEY": pem, "COSIGN_PASSWORD": "pw"},
            mapped={"BASE_REGISTRY_CREDENTIALS": logins},
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-8000:]
        (build,) = standins.records("docker/build-push-action")
        assert build["dockerfile"].splitlines()[0] == f"FROM {private.host}/vendor/busybox@{base}"
        assert tagged(registry) == build["digest"]
        assert "pull-only-secret" not in output
    finally:
        registry.stop()
        private.stop()
