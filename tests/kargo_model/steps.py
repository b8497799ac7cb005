"""A promotion step as Kargo v1.11.2 runs it: its metadata, a runner's result, and the fail and compose-output runners.

The registered step kinds (each runner's init() in pkg/promotion/runner/builtin/*.go), StepExecutionMetadata
(api/v1alpha1/promotion_types.go), what a runner returns (pkg/promotion), the JSON Schema check every builtin runner
makes of its config first (pkg/promotion/runner/builtin/validation.go, against tests/fixtures/kargo-schemas), and the
``fail`` (failer.go) and ``compose-output`` (output_composer.go) runners. The ``http`` runner is in http_step.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

import jsonschema

from ..kargo_schemas import SCHEMA_DIR
from .errors import ModelLimit
from .go import NIL_MAP, GoNamedString, GoOpaque, GoStruct, GoUint32

# Step kinds registered in open-source Kargo v1.11.2: each runner's init() in pkg/promotion/runner/builtin/*.go,
# e.g. http_requester.go:48-55, failer.go:16-23, output_composer.go:16-28 (v1.11.2).
REGISTERED_STEP_KINDS = frozenset(
    {"argocd-update", "argocd-wait", "compose-output", "copy", "delete", "fail", "file-write", "git-clear"}
    | {"git-clone", "git-commit", "github-push", "git-merge-pr", "git-open-pr", "git-push", "git-tag"}
    | {"git-wait-for-pr", "http", "http-download", "helm-template", "helm-update-chart", "json-parse"}
    | {"json-update", "kustomize-build", "kustomize-set-image", "oci-download", "oci-push", "set-freight-alias"}
    | {"set-metadata", "toml-parse", "toml-update", "untar", "yaml-merge", "yaml-parse", "yaml-update"}
)
MODELLED_STEP_KINDS = frozenset({"http", "fail", "compose-output"})


@dataclass
class StepMeta:
    """StepExecutionMetadata (api/v1alpha1/promotion_types.go:443-463)."""

    alias: str
    continue_on_error: bool
    status: str = ""
    message: str = ""
    error_count: int = 0
    started_at: float | None = None

    def go_value(self) -> GoStruct:
        fields = {
            "Alias": self.alias,
            "StartedAt": GoOpaque("*v1.Time"),
            "FinishedAt": GoOpaque("*v1.Time"),
            "ErrorCount": GoUint32(self.error_count),
            "Status": GoNamedString(self.status, "v1alpha1.PromotionStepStatus"),
            "Message": self.message,
            "ContinueOnError": self.continue_on_error,
        }
        return GoStruct("v1alpha1.StepExecutionMetadata", fields)


def has_failures(metas: Iterable[StepMeta]) -> bool:
    """StepExecutionMetadataList.HasFailures: a step Errored or Failed, continueOnError steps aside."""
    # api/v1alpha1/promotion_types.go:427-439 (v1.11.2)
    return any(m.status in ("Errored", "Failed") for m in metas if not m.continue_on_error)


@dataclass
class StepResult:
    """What a step runner returns: its status, its Output, and when to run it again."""

    status: str
    output: Any = NIL_MAP  # Output map[string]any: nil unless the step set it
    retry_after: float | None = None
    message: str = ""


class StepError(Exception):
    """The error a step runner returns beside its result; a terminal one is not retried."""

    def __init__(self, message: str, terminal: bool) -> None:
        super().__init__(message)
        self.message = message
        self.terminal = terminal


@cache
def _step_schema(kind: str) -> dict[str, Any]:
    path = SCHEMA_DIR / "promotion-steps" / f"{kind}-config.json"
    if not path.is_file():
        raise ModelLimit(f"no JSON Schema for step kind {kind!r} at {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def _schema_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    return {str: "string", dict: "object", list: "array"}.get(type(value), type(value).__name__)


def _schema_errors(kind: str, config: Any) -> list[str]:
    # pkg/promotion/runner/builtin/validation.go:17-55 (v1.11.2), messages worded as gojsonschema's.
    schema = _step_schema(kind)
    validator = jsonschema.validators.validator_for(schema)(schema)
    messages: list[str] = []
    for error in validator.iter_errors(config):
        where = ".".join(str(p) for p in error.absolute_path) or "(root)"
        detail = error.validator_value
        if error.validator == "type":
            messages.append(f"{where}: Invalid type. Expected: {detail}, given: {_schema_type(error.instance)}")
        elif error.validator == "required":
            missing = [name for name in detail if name not in error.instance]
            messages.extend(f"{where}: {name} is required" for name in missing)
        elif error.validator == "additionalProperties":
            known = set(error.schema.get("properties", {}))
            extra = [name for name in error.instance if name not in known]
            messages.extend(f"{where}: Additional property {name} is not allowed" for name in extra)
        elif error.validator == "minLength":
            messages.append(f"{where}: String length must be greater than or equal to {detail}")
        elif error.validator == "pattern":
            messages.append(f"{where}: Does not match pattern '{detail}'")
        elif error.validator == "minProperties":
            messages.append(f"{where}: Must have at least {detail} properties")
        else:
            messages.append(f"{where}: {error.message}")
    return sorted(messages)


def validate_config(kind: str, config: Any) -> StepError | None:
    """The check every builtin runner makes of its config before it runs: a terminal error for each problem."""
    problems = _schema_errors(kind, config)
    if problems:
        return StepError(f"invalid {kind} config: " + "\n".join(problems), terminal=True)
    return None


def run_fail(config: Any) -> tuple[StepResult, StepError]:
    """The ``fail`` step, its config validated."""
    # pkg/promotion/runner/builtin/failer.go:40-63 (v1.11.2)
    message = config.get("message", "")
    return StepResult("Failed"), StepError(f"failed: {message}" if message else "failed", terminal=True)


def run_compose_output(config: Any) -> tuple[StepResult, None]:
    """The ``compose-output`` step, its config validated: the config is the Output, as
    ``validateAndConvert`` made it: ``ConfigToStruct`` marshals the config to JSON and unmarshals it
    into a ``map[string]interface{}``, so every number is a float64 (a yaml.v3 ``int`` never reaches
    the shared state, and the next step's deep copy takes it)."""
    # pkg/promotion/runner/builtin/output_composer.go:64-88, validation.go:17-35,
    # pkg/promotion/config.go:35-51 (v1.11.2)
    from .go import go_json_marshal

    return StepResult(
        "Succeeded", output=json.loads(go_json_marshal(dict(config)), parse_float=float, parse_int=float)
    ), None
