"""`image-factory platforms`: a rebuild targets what its bases are published for, read from a real
registry, unless images.yaml says otherwise."""

from __future__ import annotations

import json

from image_factory.cli import main
from image_factory.discovery.discover import discover


def enrol(factory, host: str, extra: str = "") -> None:
    factory.write(
        "images.yaml",
        f"""
        insecureRegistries: ["{host}"]
        images:
          - name: app
            registry: ghcr.io
            repository: acme/app
            source: {{provider: local, repo: app, dockerfile: Dockerfile, workflow: build.yml{extra}}}
        """,
    )
    factory.write("app/Dockerfile", f"FROM {host}/base/multi:1 AS build\nFROM {host}/base/single:1\n")
    discover(factory.root)


def run(factory, capsys, pins: dict) -> tuple[int, str]:
    code = main(["platforms", "--root", str(factory.root), "--image", "app", "--bases", json.dumps(pins)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_rebuild_keeps_every_platform_all_its_bases_serve(factory, registry, capsys):
    host = registry.host
    multi, platforms = registry.push_index("base/multi", "1", "m")
    arm, _ = registry.push_image("base/single", "1", "s", architecture="arm64")
    enrol(factory, host)
    code, out = run(factory, capsys, {f"{host}/base/multi:1": multi})
    assert (code, out) == (0, "platforms=linux/amd64,linux/arm64\n")  # never drops arm64
    assert sorted(platforms) == ["linux/amd64", "linux/arm64"]
    code, out = run(factory, capsys, {f"{host}/base/multi:1": multi, f"{host}/base/single:1": arm})
    assert (code, out) == (0, "platforms=linux/arm64\n")  # what both serve


def test_bases_with_no_platform_in_common_need_images_yaml_to_say(factory, registry, capsys):
    host = registry.host
    amd, _ = registry.push_image("base/multi", "1", "a", architecture="amd64")
    arm, _ = registry.push_image("base/single", "1", "s", architecture="arm64")
    enrol(factory, host)
    code, out = run(factory, capsys, {f"{host}/base/multi:1": amd, f"{host}/base/single:1": arm})
    assert code == 1
    assert out == (
        f"error: app: its bases share no platform ({host}/base/multi:1: linux/amd64; {host}/base/single:1: "
        "linux/arm64): set source.platforms in images.yaml\n"
    )
    enrol(factory, host, ", platforms: [linux/arm64]")
    assert run(factory, capsys, {"x/y:1": "sha256:" + "0" * 64}) == (0, "platforms=linux/arm64\n")  # no lookup
