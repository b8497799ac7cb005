"""The excerpt of images.yaml a trust decision reads gives what the full read gives: the same
settings and the same entry, or, for anything out of the ordinary, the full read itself."""

from __future__ import annotations

import dataclasses
import random

import pytest

from image_factory.enrolment.config import load_config
from image_factory.enrolment.config_excerpt import load_config_excerpt
from image_factory.errors import FactoryError

from ..conftest import REPO_ROOT


def same_entry(a, b) -> bool:
    """Equal but for where each document put it (its position, its document's text)."""
    return dataclasses.replace(a, index=0, document=None) == dataclasses.replace(b, index=0, document=None)


def test_every_entry_of_the_bundled_example_reads_as_the_full_read_gives_it():
    full = load_config(REPO_ROOT)
    for image in full.images:
        excerpt = load_config_excerpt(REPO_ROOT, image.name)
        assert excerpt.settings == full.settings and excerpt.trust == full.trust
        (only,) = excerpt.images
        assert same_entry(only, image), image.name
    assert load_config_excerpt(REPO_ROOT).images == ()
    verified = load_config_excerpt(REPO_ROOT, verified=True)
    assert [i.name for i in verified.images] == [i.name for i in full.images if i.verify is not None]


def test_random_layouts_read_the_same(factory):
    """Keys in any order, flow and block style, comments, quoted names: the same settings and entry."""
    chance = random.Random(23)
    for _ in range(30):
        entries = []
        for number in range(chance.randint(1, 6)):
            name = f"img-{number}"
            written = chance.choice([name, f'"{name}"', f"'{name}'"])
            fields = [f"name: {written}", "registry: ghcr.io", f"repository: acme/{name}"]
            if chance.random() < 0.5:
                fields.append("source: {provider: local, repo: app, dockerfile: Dockerfile, workflow: build.yml}")
                if chance.random() < 0.5:
                    fields.append("signing: {key: keys/app.pub}")
            else:
                fields.append("verify: {certificateIdentity: a@b.c, certificateOidcIssuer: https://issuer.example}")
            chance.shuffle(fields)
            if chance.random() < 0.5:
                entries.append("  - {" + ", ".join(fields) + "}")
            else:
                entries.append("  - " + "\n    ".join(fields) + "\n    # a comment")
        sections = [
            "kargo: {factoryRepo: acme/factory}",
            'trust:\n  senders: ["kargo[bot]", scanner]',
            "defaults: {rebuildDelay: 3d}",
            "images:\n" + "\n".join(entries),
        ]
        chance.shuffle(sections)
        factory.write("images.yaml", "\n".join(sections) + "\n")
        factory.write("keys/app.pub", "unused\n")
        full = load_config(factory.root)
        for image in full.images:
            excerpt = load_config_excerpt(factory.root, image.name)
            assert excerpt.settings == full.settings
            (only,) = excerpt.images
            assert same_entry(only, image)
        verified = load_config_excerpt(factory.root, verified=True).images
        assert [i.name for i in verified] == [i.name for i in full.images if i.verify is not None]


def test_anchors_and_aliases_are_left_to_the_full_read(factory):
    factory.write(
        "images.yaml",
        """
        kargo: {factoryRepo: acme/factory}
        trust: {senders: &who [kargo]}
        images:
          - {name: a, registry: ghcr.io, repository: acme/a}
          - {name: b, registry: ghcr.io, repository: acme/b}
        """,
    )
    full = load_config(factory.root)
    excerpt = load_config_excerpt(factory.root, "b")
    assert excerpt.images == full.images  # the full read itself: every image
    assert excerpt.trust.senders == ("kargo",)


@pytest.mark.parametrize(
    "text",
    [
        "kargo: {factoryRepo: acme/factory}\nimages:\n  - {name: a, registry: ghcr.io}\n",
        "images: []\n---\nimages: []\n",
        "kargo: [\n",
    ],
)
def test_a_broken_images_yaml_is_the_full_reads_error(factory, text):
    factory.write("images.yaml", text)
    with pytest.raises(FactoryError) as full:
        load_config(factory.root)
    with pytest.raises(FactoryError) as excerpt:
        load_config_excerpt(factory.root, "a")
    assert [str(p) for p in excerpt.value.problems] == [str(p) for p in full.value.problems]


WRONG = [5, "hello", [1, 2], {"a": 1}, None, True]


def wrong_shapes():
    """images.yaml documents of every wrong shape: the whole file, each setting, each field of an entry."""
    import yaml

    yield from WRONG
    good = {
        "kargo": {"factoryRepo": "acme/factory"},
        "trust": {"senders": ["kargo"]},
        "defaults": {"rebuildDelay": "3d"},
        "images": [
            {
                "name": "a",
                "registry": "ghcr.io",
                "repository": "acme/a",
                "source": {"provider": "local", "repo": "a", "dockerfile": "Dockerfile", "workflow": "build.yml"},
                "warehouse": {"interval": "1h"},
            }
        ],
    }
    for key in good:
        for value in WRONG:
            yield {**good, key: value}
    for field in good["images"][0]:
        for value in WRONG:
            yield {**good, "images": [{**good["images"][0], field: value}]}
    del yaml


@pytest.mark.parametrize("document", list(wrong_shapes()), ids=str)
def test_images_yaml_of_any_wrong_shape_is_an_error_never_a_crash(factory, document):
    import yaml

    factory.write("images.yaml", yaml.safe_dump(document))
    try:
        load_config(factory.root)
    except FactoryError as error:
        assert error.problems and all(str(p).startswith("images.yaml") for p in error.problems)
    else:
        pytest.fail(f"accepted {document!r}")
