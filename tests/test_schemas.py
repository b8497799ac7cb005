"""The compiled fast check and jsonschema agree on every fixture: valid passes both, invalid fails both."""

from __future__ import annotations

import fastjsonschema
import jsonschema
import pytest

from image_factory import schemas
from image_factory.yaml_source import load_yaml

from .conftest import FIXTURES, REPO_ROOT

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
