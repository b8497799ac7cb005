"""Kargo's own JSON Schemas (Kargo v1.11, Argo Rollouts v1.9), kept in tests/fixtures/kargo-schemas
(its SOURCE.md says where they come from and how to refresh them)."""

from __future__ import annotations

import json
from functools import cache

import jsonschema
import pytest

from .conftest import FIXTURES

SCHEMA_DIR = FIXTURES / "kargo-schemas"
CRDS = {
    "Project": "project_v1alpha1.json",
    "ProjectConfig": "projectconfig_v1alpha1.json",
    "Warehouse": "warehouse_v1alpha1.json",
    "Stage": "stage_v1alpha1.json",
    "AnalysisTemplate": "argo-rollouts/analysistemplate_v1alpha1.json",
}
# Kubernetes' own ConfigMap, as strict as the CRD schemas (the fields the generator may write).
CONFIG_MAP = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "data"],
    "properties": {
        "apiVersion": {"const": "v1"},
        "kind": {"const": "ConfigMap"},
        "metadata": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "namespace"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "data": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

# Kubernetes' own Namespace, as strict: only the metadata the generator writes.
NAMESPACE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata"],
    "properties": {
        "apiVersion": {"const": "v1"},
        "kind": {"const": "Namespace"},
        "metadata": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "labels"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
    },
}


def _core(kind: str, api: str, body: dict, required: list[str]) -> dict:
    """A Kubernetes object of `kind`, as strict as the CRD schemas: only the fields the generator writes."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", *required],
        "properties": {
            "apiVersion": {"const": api},
            "kind": {"const": kind},
            "metadata": CONFIG_MAP["properties"]["metadata"],
            **body,
        },
    }


NAME = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"}
RBAC = "rbac.authorization.k8s.io/v1"
# Kubernetes' ServiceAccount, Role and RoleBinding (k8s.io/api core/v1 and rbac/v1 types)
SERVICE_ACCOUNT = _core("ServiceAccount", "v1", {"automountServiceAccountToken": {"type": "boolean"}}, [])
RULE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiGroups", "resources", "verbs"],
    "properties": {
        "apiGroups": {"type": "array", "items": {"type": "string"}},
        "resources": {"type": "array", "items": {"type": "string"}},
        "verbs": {"type": "array", "items": {"enum": ["get", "list", "watch"]}},  # read-only, by design
    },
}
ROLE = _core("Role", RBAC, {"rules": {"type": "array", "items": RULE}}, ["rules"])
ROLE_BINDING = _core(
    "RoleBinding",
    RBAC,
    {
        "roleRef": {
            "type": "object",
            "additionalProperties": False,
            "required": ["apiGroup", "kind", "name"],
            "properties": {"apiGroup": {"const": "rbac.authorization.k8s.io"}, "kind": {"const": "Role"}, "name": NAME},
        },
        "subjects": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["kind", "name", "namespace"],
                "properties": {"kind": {"const": "ServiceAccount"}, "name": NAME, "namespace": {"type": "string"}},
            },
        },
    },
    ["roleRef", "subjects"],
)
CORE = {
    "ConfigMap": CONFIG_MAP,
    "Namespace": NAMESPACE,
    "ServiceAccount": SERVICE_ACCOUNT,
    "Role": ROLE,
    "RoleBinding": ROLE_BINDING,
}


@cache
def schema(relative: str) -> dict:
    path = SCHEMA_DIR / relative
    if not path.is_file():
        pytest.fail(f"Kargo schema {relative} not found in {SCHEMA_DIR}: see its SOURCE.md to add it")
    return json.loads(path.read_text(encoding="utf-8"))


def errors(instance: object, relative: str) -> list[str]:
    document = schema(relative)
    validator = jsonschema.validators.validator_for(document)(document)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


def validate_object(body: dict) -> list[str]:
    """Every problem Kargo's schemas find in one generated object, its subscriptions and step configs
    (Argo Rollouts' schema for an AnalysisTemplate, Kubernetes' shape for a ConfigMap or Namespace)."""
    if body["kind"] in CORE:
        validator = jsonschema.Draft202012Validator(CORE[body["kind"]])
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]
    problems = errors(body, CRDS[body["kind"]])
    spec = body.get("spec", {})
    for subscription in spec.get("subscriptions", []):
        problems += errors(subscription["image"], "subscriptions/image.json")
    for step in spec.get("promotionTemplate", {}).get("spec", {}).get("steps", []):
        step_schema = f"promotion-steps/{step['uses']}-config.json"
        if (SCHEMA_DIR / step_schema).is_file():
            problems += errors(step.get("config", {}), step_schema)
        else:
            problems.append(f"no schema for step {step['uses']!r}")
    return problems
