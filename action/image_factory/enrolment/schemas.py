"""The JSON Schemas in `schemas/`, and validation that reports file:line: field: message."""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import re
import sys
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import fastjsonschema
from fastjsonschema.ref_resolver import RefResolver

from image_factory.enrolment.yaml_source import YamlDocument
from image_factory.errors import Problem, show_value

if TYPE_CHECKING:
    import jsonschema

IMAGES = "images.schema.json"
IMAGE_STATE = "image-state.schema.json"
BASE_IMAGE_STATE = "base-image-state.schema.json"


def schema_dir() -> Path:
    """`schemas/` at the repository root; a wheel carries a copy inside the package."""
    bundled = resources.files("image_factory") / "schemas"
    if bundled.is_dir():
        return Path(str(bundled))
    return Path(__file__).resolve().parents[3] / "schemas"


@cache
def _schema_texts() -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(schema_dir().glob("*.schema.json"))}


@cache
def all_schemas() -> dict[str, dict]:
    """Every schema in `schemas/`, by file name."""
    return {name: json.loads(text) for name, text in _schema_texts().items()}


@cache
def bundle_digest() -> str:
    """A digest of every schema file as written: what a cache of checked data is keyed by."""
    return hashlib.sha256(json.dumps(_schema_texts(), sort_keys=True).encode()).hexdigest()


@cache
def _validator(schema_name: str) -> jsonschema.protocols.Validator:
    # jsonschema only words the problems of invalid documents: imported when one turns up.
    import jsonschema
    from referencing import Registry, Resource

    schemas = all_schemas()
    registry = Registry().with_resources((schema["$id"], Resource.from_contents(schema)) for schema in schemas.values())
    schema = schemas[schema_name]
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, registry=registry)


@cache
def _fast_check(schema_name: str):
    """A compiled validator (fastjsonschema): ~20 times faster, but it stops at the first error.

    Generating and compiling it costs a command ~0.1 s, more than a one-image event takes
    otherwise: its bytecode is kept in the user's cache folder, keyed by everything it depends on.
    """
    # fastjsonschema's resolver rewrites the references of the schemas it reads, in place: its
    # own copy, so that all_schemas() stays what the files say
    schemas = {name: json.loads(text) for name, text in _schema_texts().items()}
    by_id = {schema["$id"]: schema for schema in schemas.values()}
    text = json.dumps([schema_name, bundle_digest(), fastjsonschema.VERSION, sys.version], sort_keys=True)
    cached = cache_folder() / f"{schema_name}.{hashlib.sha256(text.encode()).hexdigest()[:20]}.marshal"
    try:
        code = marshal.loads(cached.read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        source = fastjsonschema.compile_to_code(schemas[schema_name], handlers={"https": by_id.__getitem__})
        code = compile(source, f"<fastjsonschema: {schema_name}>", "exec")
        _keep(cached, marshal.dumps(code))
    namespace: dict = {}
    exec(code, namespace)  # what fastjsonschema.compile() does with the code it generates
    return namespace[RefResolver.from_schema(schemas[schema_name]).get_scope_name()]


MANY_DEPENDENTS = 256


@cache
def _dependent_patterns() -> tuple[re.Pattern, re.Pattern] | None:
    """The patterns base-image-state.schema.json gives a dependent's `image` and `pinnedDigest`;
    None when the schema says more than that (the compiled check then does it all)."""
    schemas = all_schemas()
    common = schemas["common.schema.json"].get("$defs", {})
    item = schemas[BASE_IMAGE_STATE]["properties"]["dependents"]["items"]
    refs = {key: value.get("$ref", "") for key, value in item.get("properties", {}).items()}
    shape = {key: item.get(key) for key in ("type", "additionalProperties", "required")}
    if shape != {"type": "object", "additionalProperties": False, "required": ["image", "pinnedDigest"]}:
        return None
    if len(item) != 4 or refs.keys() != {"image", "pinnedDigest"}:
        return None
    if not refs["image"].endswith("common.schema.json#/$defs/name"):
        return None
    if not refs["pinnedDigest"].endswith("common.schema.json#/$defs/nullableDigest"):
        return None
    nullable = common.get("nullableDigest", {}).get("oneOf", [])
    if (
        len(nullable) != 2
        or nullable[0] != {"type": "null"}
        or not nullable[1].get("$ref", "").endswith("#/$defs/digest")
    ):
        return None
    name, digest = common["name"], common["digest"]
    if set(name) - {"type", "pattern", "x-error-message"} or set(digest) - {"type", "pattern", "x-error-message"}:
        return None
    # the schemas' `$` means the end of the text here (fullmatch), as fastjsonschema reads it
    return re.compile(name["pattern"][1:-1]), re.compile(digest["pattern"][1:-1])


def _dependents_valid(data: object) -> bool:
    """Whether a base image state's many dependents are all valid, checked directly: the compiled
    check spends ~10 µs on each one, and a popular base has tens of thousands."""
    dependents = data.get("dependents") if isinstance(data, dict) else None
    if not isinstance(dependents, list) or len(dependents) < MANY_DEPENDENTS:
        return False
    patterns = _dependent_patterns()
    if patterns is None:
        return False
    name, digest = patterns
    keys = {"image", "pinnedDigest"}
    for item in dependents:
        if type(item) is not dict or item.keys() != keys:
            return False
        image, pinned = item["image"], item["pinnedDigest"]
        if type(image) is not str or not name.fullmatch(image):
            return False
        if pinned is not None and (type(pinned) is not str or not digest.fullmatch(pinned)):
            return False
    return True


def cache_folder() -> Path:
    configured = os.environ.get("IMAGE_FACTORY_CACHE")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "image-factory"


def _keep(path: Path, data: bytes) -> None:
    """Best effort: a cache that cannot be written only costs the next command the compile."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temp.write_bytes(data)
        os.rename(temp, path)  # atomic on POSIX, as replace()
    except OSError:
        pass


def validate(document: YamlDocument, schema_name: str) -> list[Problem]:
    """Every schema violation in `document`, in file order, one problem each.

    Valid documents (nearly all of them) pass the compiled check; jsonschema then finds and
    words every problem of the others.
    """
    try:
        if schema_name == BASE_IMAGE_STATE and _dependents_valid(document.data):
            _fast_check(schema_name)({**document.data, "dependents": []})  # the rest of it
        else:
            _fast_check(schema_name)(document.data)
        return []
    except fastjsonschema.JsonSchemaException:
        pass
    problems = []
    for error in _validator(schema_name).iter_errors(document.data):
        problems.extend(_problems(document, error))
    return sorted(set(problems), key=lambda p: (p.line or 0, p.field or "", p.message))


def _problems(document: YamlDocument, error: jsonschema.ValidationError) -> list[Problem]:
    path = tuple(error.absolute_path)
    if error.validator in ("oneOf", "anyOf") and error.context:
        # Report the branch that got furthest rather than "is not valid under any of".
        from jsonschema.exceptions import best_match

        best = best_match(error.context)
        return _problems(document, best)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        known = ", ".join(sorted(allowed))
        return [document.problem((*path, key), f"unknown field (allowed: {known})") for key in extra]
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return [document.problem(path, f"missing required field {missing!r}")]
    if error.validator == "type":
        return [document.problem(path, _type_message(error.instance, error.validator_value))]
    if error.validator == "enum":
        choices = ", ".join(str(choice) for choice in error.validator_value)
        return [document.problem(path, f"{show_value(error.instance)} must be one of {choices}")]
    if error.validator == "propertyNames":
        return [document.problem(path, error.message)]
    custom = error.schema.get("x-error-message") if isinstance(error.schema, dict) else None
    if custom and error.validator == "not":
        return [document.problem(path, custom)]
    if custom:
        return [document.problem(path, f"{show_value(error.instance)} {custom}")]
    return [document.problem(path, error.message)]


_TYPE_NAMES = {"array": "list", "object": "mapping", "string": "string", "boolean": "boolean (true or false)"}


def _type_message(instance: object, expected: str | list[str]) -> str:
    names = [_TYPE_NAMES.get(name, name) for name in ([expected] if isinstance(expected, str) else expected)]
    shown = instance.isoformat() if isinstance(instance, date) else show_value(instance)
    message = f"{shown} is not a {' or '.join(names)}"
    if "string" in names and isinstance(instance, int | float | bool):
        message += " (YAML read it as a number or boolean: quote it)"
    elif "string" in names and isinstance(instance, date):  # datetime is a date too
        message += " (YAML read it as a date: quote it)"
    return message
