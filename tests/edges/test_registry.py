"""The registry client against a real registry (Debian's docker-registry on 127.0.0.1), and its
retry behaviour against `responses`."""

from __future__ import annotations

import hashlib
import json

import pytest
import responses

from image_factory.cli import main
from image_factory.edges.registry import ACCEPT, RegistryClient
from image_factory.enrolment.refs import parse_ref
from image_factory.errors import FactoryError

from ..registry_server import Registry


def client(registry, **kwargs) -> RegistryClient:
    return RegistryClient(insecure={registry.host}, credentials={}, **kwargs)


def test_a_tag_resolves_to_the_pushed_digest_in_one_request(registry):
    pushed, _ = registry.push_image("team/base", "1", "first")
    registry_client = client(registry)
    resolved = registry_client.resolve(parse_ref(f"{registry.host}/team/base:1"))
    assert (resolved.digest, resolved.media_type, resolved.platforms) == (
        pushed,
        "application/vnd.oci.image.manifest.v1+json",
        {},
    )
    assert registry_client.requests == 1  # a HEAD, and the header carried the digest
    registry_client.resolve(parse_ref(f"{registry.host}/team/base:1"))
    assert registry_client.requests == 1  # answered from the run's cache


def test_moving_the_tag_changes_the_digest(registry):
    first, _ = registry.push_image("team/base", "1", "first")
    second, _ = registry.push_image("team/base", "1", "second")
    assert first != second
    assert client(registry).resolve(parse_ref(f"{registry.host}/team/base:1")).digest == second


def test_a_multi_arch_index_records_the_index_and_its_platforms(registry, capsys):
    index, platforms = registry.push_index("team/multi", "2", "x")
    assert main(["digest", f"{registry.host}/team/multi:2", "--json", "--insecure-registry", registry.host]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {
        "ref": f"{registry.host}/team/multi:2",
        "digest": index,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "platforms": platforms,
    }
    assert err.strip() == "2 registry requests"  # HEAD, then GET for the platforms


def test_unknown_tag_and_stopped_registry_are_clear_errors(registry, capsys):
    registry.push_image("team/base", "1", "first")
    with pytest.raises(FactoryError) as raised:
        client(registry).resolve(parse_ref(f"{registry.host}/team/base:nope"))
    assert str(raised.value) == f"registry: {registry.host}/team/base:nope: not found on {registry.host} (404)"
    registry.stop()
    assert main(["digest", f"{registry.host}/team/base:1", "--insecure-registry", registry.host]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: registry: {registry.host}/team/base:1: cannot reach {registry.host}: ConnectionError"
    )


@responses.activate
def test_429_and_5xx_are_retried_honouring_retry_after():
    url = "https://ghcr.io/v2/acme/app/manifests/1"
    digest = "sha256:" + "a" * 64
    responses.add(responses.HEAD, url, status=429, headers={"Retry-After": "3"})
    responses.add(responses.HEAD, url, status=503)
    responses.add(
        responses.HEAD,
        url,
        status=200,
        headers={"Docker-Content-Digest": digest, "Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    waits = []
    registry_client = RegistryClient(credentials={}, sleep=waits.append)
    assert registry_client.resolve(parse_ref("ghcr.io/acme/app:1")).digest == digest
    assert waits == [3.0, 2.0] and registry_client.requests == 3
    assert responses.calls[0].request.headers["Accept"] == ACCEPT


@responses.activate
def test_anonymous_bearer_token_flow_and_digest_fallback():
    url = "https://registry-1.docker.io/v2/library/python/manifests/3.12-slim"
    challenge = 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/python:pull"'
    responses.add(responses.HEAD, url, status=401, headers={"WWW-Authenticate": challenge})
    responses.add(responses.GET, "https://auth.docker.io/token", json={"token": "t0k", "expires_in": 300})
    body = b'{"schemaVersion":2}'
    responses.add(
        responses.HEAD, url, status=200, headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
    )
    responses.add(
        responses.GET,
        url,
        status=200,
        body=body,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    resolved = RegistryClient(credentials={}).resolve(parse_ref("python:3.12-slim"))
    assert resolved.digest == "sha256:" + hashlib.sha256(body).hexdigest()  # no header: sha256 of the body
    token_call = responses.calls[1].request
    assert (
        "service=registry.docker.io" in token_call.url
        and "scope=repository%3Alibrary%2Fpython%3Apull" in token_call.url
    )
    assert responses.calls[2].request.headers["Authorization"] == "Bearer t0k"


def factory_on(registry, factory, extra: str = "") -> None:
    factory.write(
        "images.yaml",
        f"""
        insecureRegistries: ["{registry.host}"]
        {extra}
        images:
          - name: app
            registry: ghcr.io
            repository: acme/app
            source: {{provider: local, repo: app, dockerfile: Dockerfile, workflow: build.yml}}
        """,
    )
    factory.write("app/Dockerfile", f"FROM {registry.host}/team/base:1\n")


def base_state(factory, registry) -> dict:
    import yaml

    return yaml.safe_load(factory.read(f"state/base-images/{parse_ref(f'{registry.host}/team/base:1').slug()}.yaml"))


def test_discover_resolve_digests_records_the_history_and_status_shows_stale_images(registry, factory, capsys):
    first, _ = registry.push_image("team/base", "1", "first")
    factory_on(registry, factory)
    assert main(["discover", "--root", str(factory.root), "--resolve-digests"]) == 0
    assert capsys.readouterr().err.strip() == "1 registry requests"
    runtime = base_state(factory, registry)["runtime"]
    assert runtime["currentDigest"] == first
    assert [(e["digest"], e["seenBy"]) for e in runtime["history"]] == [(first, "registry")]

    from image_factory import timestamps
    from image_factory.rebuilds import events

    events.record_build(
        factory.root,
        "app",
        "sha256:" + "f" * 64,
        "success",
        {f"{registry.host}/team/base:1": first},
        None,
        timestamps.now(),
    )
    second, _ = registry.push_image("team/base", "1", "second")
    assert main(["discover", "--root", str(factory.root), "--resolve-digests"]) == 0
    runtime = base_state(factory, registry)["runtime"]
    assert [e["digest"] for e in runtime["history"]] == [first, second]
    assert runtime["currentDigest"] == second
    capsys.readouterr()
    assert main(["status", "--root", str(factory.root), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["stale"]
    assert (row["image"], row["built"], row["current"]) == ("app", first, second)
    assert row["rebuild"].startswith("rebuild pending until ")  # the 7-day delay has not passed


def test_an_unreachable_registry_leaves_state_untouched(registry, factory, capsys):
    registry.push_image("team/base", "1", "first")
    factory_on(registry, factory)
    assert main(["discover", "--root", str(factory.root)]) == 0
    before = factory.snapshot()
    registry.stop()
    capsys.readouterr()
    assert main(["discover", "--root", str(factory.root), "--resolve-digests"]) == 1
    assert "cannot reach" in capsys.readouterr().err
    assert factory.snapshot() == before


def test_a_pull_through_mirror_serves_reads_and_state_keeps_the_canonical_reference(
    registry, factory, tmp_path, capsys
):
    pushed, _ = registry.push_image("team/base", "1", "first")
    mirror_folder = tmp_path / "mirror"
    mirror_folder.mkdir()
    mirror = Registry(mirror_folder, proxy_of=registry)
    try:
        factory_on(
            registry,
            factory,
            f'registryMirrors: {{"{registry.host}": "{mirror.host}"}}\n        '
            f'insecureRegistries: ["{registry.host}", "{mirror.host}"]',
        )
        text = factory.read("images.yaml").replace(f'insecureRegistries: ["{registry.host}"]\n', "", 1)
        factory.write("images.yaml", text)
        assert main(["discover", "--root", str(factory.root), "--resolve-digests"]) == 0
        state = base_state(factory, registry)
        assert state["ref"] == f"{registry.host}/team/base:1"
        assert state["runtime"]["currentDigest"] == pushed
        registry.stop()  # the mirror answers from its cache: the reads never went to the origin directly
        client_ = RegistryClient(mirrors={registry.host: mirror.host}, insecure={mirror.host}, credentials={})
        assert client_.resolve(parse_ref(f"{registry.host}/team/base:1")).digest == pushed
    finally:
        mirror.stop()


def test_htpasswd_basic_auth_with_credentials_from_the_docker_config(tmp_path, monkeypatch, capsys):
    import base64

    folder = tmp_path / "secure"
    folder.mkdir()
    secure = Registry(folder, users={"robot": "s3cret"})
    try:
        one, _ = secure.push_image("team/base", "1", "one")
        two, _ = secure.push_image("team/base", "2", "two")
        docker = tmp_path / "docker"
        docker.mkdir()
        token = base64.b64encode(b"robot:s3cret").decode()
        (docker / "config.json").write_text(json.dumps({"auths": {f"http://{secure.host}": {"auth": token}}}))
        monkeypatch.setenv("DOCKER_CONFIG", str(docker))
        registry_client = RegistryClient(insecure={secure.host})
        assert registry_client.resolve(parse_ref(f"{secure.host}/team/base:1")).digest == one
        assert registry_client.requests == 2  # the challenge, then with credentials
        assert registry_client.resolve(parse_ref(f"{secure.host}/team/base:2")).digest == two
        assert registry_client.requests == 3  # the host's credentials are remembered for the run

        without = RegistryClient(insecure={secure.host}, credentials={})
        with pytest.raises(FactoryError) as raised:
            without.resolve(parse_ref(f"{secure.host}/team/base:1"))
        assert str(raised.value).endswith(f"{secure.host} asks for credentials and none are configured")
        wrong = RegistryClient(insecure={secure.host}, credentials={secure.host: ("robot", "nope")})
        with pytest.raises(FactoryError) as raised:
            wrong.resolve(parse_ref(f"{secure.host}/team/base:1"))
        assert str(raised.value).endswith(f"{secure.host} refused access (401): check the credentials for it")
        assert "s3cret" not in str(raised.value) and "nope" not in str(raised.value)
    finally:
        secure.stop()


def test_credentials_from_the_environment_win_and_bad_json_is_named():
    from image_factory.edges.registry import docker_credentials

    found = docker_credentials(
        {"IMAGE_FACTORY_REGISTRY_CREDENTIALS": '{"ghcr.io": "bot:pa:ss"}', "DOCKER_CONFIG": "/nowhere"}
    )
    assert found == {"ghcr.io": ("bot", "pa:ss")}
    with pytest.raises(FactoryError) as raised:
        docker_credentials({"IMAGE_FACTORY_REGISTRY_CREDENTIALS": "bot:secret"})
    assert str(raised.value).startswith("IMAGE_FACTORY_REGISTRY_CREDENTIALS: is not JSON")
    assert "secret" not in str(raised.value)


@responses.activate
def test_a_bearer_token_is_reused_for_its_scope():
    challenge = 'Bearer realm="https://auth.example/token",service="registry.example"'
    digest = "sha256:" + "b" * 64
    first, second = (f"https://registry.example/v2/acme/app/manifests/{tag}" for tag in ("1", "2"))
    responses.add(responses.HEAD, first, status=401, headers={"WWW-Authenticate": challenge})
    responses.add(responses.HEAD, first, status=200, headers={"Docker-Content-Digest": digest})
    # the registry accepts the token it issued; a client without it would get a 401 here
    responses.add(responses.HEAD, second, status=200, headers={"Docker-Content-Digest": digest})
    responses.add(responses.GET, "https://auth.example/token", json={"access_token": "abc", "expires_in": 300})
    registry_client = RegistryClient(credentials={})
    registry_client.resolve(parse_ref("registry.example/acme/app:1"))
    registry_client.resolve(parse_ref("registry.example/acme/app:2"))
    paths = [(c.request.method, c.request.url.split("?")[0]) for c in responses.calls]
    assert paths.count(("GET", "https://auth.example/token")) == 1
    assert responses.calls[-1].request.headers["Authorization"] == "Bearer abc"
    assert registry_client.requests == 4  # 401, token, 200 for the first tag; one HEAD for the second
