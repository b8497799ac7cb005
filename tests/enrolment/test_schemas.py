"""The compiled fast check and jsonschema agree on every fixture: valid passes both, invalid fails both."""

from __future__ import annotations

import fastjsonschema
import jsonschema
import pytest

from image_factory.enrolment import schemas
from image_factory.enrolment.yaml_source import load_yaml

from ..conftest import FIXTURES, REPO_ROOT

CONFIGS = [*sorted((FIXTURES / "config").glob("*/*.yaml")), REPO_ROOT / "images.yaml"]
STATES = sorted((REPO_ROOT / "state" / "images").glob("*.yaml")) + sorted(
    (REPO_ROOT / "state" / "base-images").glob("*.yaml")
)


def agree(data: object, schema_name: str) -> bool:
    """Whether `data` is valid; fails the test when the two validators disagree."""
    full = schemas._validator(schema_name).is_valid(data)
    try:
        schemas._fast_check(schema_name)(data)
        fast = True
    except fastjsonschema.JsonSchemaException:
        fast = False
    assert fast == full, f"fastjsonschema says {fast}, jsonschema says {full}"
    return full


@pytest.mark.parametrize("path", CONFIGS, ids=[f"{p.parent.name}/{p.name}" for p in CONFIGS])
def test_validators_agree_on_configs(path):
    try:
        document = load_yaml(path)
    except Exception:  # broken YAML never reaches a validator
        return
    valid = agree(document.data, schemas.IMAGES)
    if path.parent.name == "valid" or path.name == "images.yaml":
        assert valid


@pytest.mark.parametrize("path", STATES, ids=[p.name for p in STATES])
def test_validators_agree_on_state(path):
    schema = schemas.IMAGE_STATE if path.parent.name == "images" else schemas.BASE_IMAGE_STATE
    document = load_yaml(path)
    assert agree(document.data, schema)
    broken = dict(document.data, runtime={**document.data["runtime"], "currentDigest": "sha256:short"})
    assert not agree(broken, schema)
    assert not agree({**document.data, "surprise": 1}, schema)


def test_schemas_are_valid_schemas():
    for name in (schemas.IMAGES, schemas.IMAGE_STATE, schemas.BASE_IMAGE_STATE):
        document = schemas.all_schemas()[name]
        jsonschema.validators.validator_for(document).check_schema(document)


def test_many_dependents_are_checked_as_the_schema_says(tmp_path):
    """A popular base's dependents are checked directly (schemas._dependents_valid), not by the
    compiled validator; every kind of bad dependent is still refused, by the schema's words."""
    from image_factory.enrolment import schemas as schema_module
    from image_factory.enrolment.yaml_source import YamlDocument

    digest = "sha256:" + "a" * 64
    base = {
        "ref": "docker.io/library/python:3.12",
        "registry": "docker.io",
        "repository": "library/python",
        "tag": "3.12",
        "enrolledAs": None,
        "dependents": [{"image": f"app-{n}", "pinnedDigest": digest if n % 2 else None} for n in range(300)],
        "warehouse": None,
        "runtime": {"currentDigest": None, "history": [], "lastBuild": None, "attempts": []},
    }
    check = lambda data: schema_module.validate(YamlDocument("f.yaml", data), schema_module.BASE_IMAGE_STATE)  # noqa: E731
    assert schema_module._dependents_valid(base) and check(base) == []
    bad_items = [
        {"image": "App", "pinnedDigest": None},
        {"image": "app", "pinnedDigest": "sha256:abc"},
        {"image": "app"},
        {"image": "app", "pinnedDigest": None, "extra": 1},
        "app",
        {"image": 5, "pinnedDigest": None},
    ]
    for bad in bad_items:
        data = {**base, "dependents": [*base["dependents"], bad]}
        assert not schema_module._dependents_valid(data), bad
        assert check(data) != [], bad
    assert check({**base, "tag": 5}) != []  # the rest of the document is still checked
    for odd in ({"image": "app-x\n", "pinnedDigest": None}, {"image": "app", "pinnedDigest": digest + "\n"}):
        # not quick: left to the compiled check and jsonschema, whatever they make of a newline
        assert not schema_module._dependents_valid({**base, "dependents": [*base["dependents"], odd]})
