"""A Stage's ``spec.verification.args`` as Kargo v1.11.2 evaluates them for the AnalysisRun.

pkg/rollouts/analysis_run_builder.go (vars, then each argument, which must come out a string) with the
environment and functions of pkg/controller/stages/regular_stages.go.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import KargoError, VerificationArgError
from .functions import Freight, freight_context, stage_functions, target_freight
from .go import go_quote, go_type_of
from .templates import evaluate_template


def evaluate_verification_args(
    stage: Mapping[str, Any],
    freight: Freight | Mapping[str, Any],
    warehouses: Mapping[str, Sequence[str]],
    *,
    secrets: Mapping[str, Mapping[str, str]] | None = None,
    config_maps: Mapping[str, Mapping[str, str]] | None = None,
    inherited_freight: Iterable[Freight | Mapping[str, Any]] = (),
) -> dict[str, str]:
    """``spec.verification.args`` as the AnalysisRun gets them; an argument that is not a string is an error."""
    spec = stage.get("spec") or {}
    references = [target_freight(freight, stage), *(Freight.of(f) for f in inherited_freight)]
    context = freight_context(stage, references, warehouses)
    # regular_stages.go:1500-1524 (v1.11.2): ctx {project, stage}; data, freight and utility functions.
    functions = stage_functions(context, secrets or {}, config_maps or {})
    env: dict[str, Any] = {"ctx": {"project": context.project, "stage": stage["metadata"]["name"]}}
    stage_vars = spec.get("vars") or []
    if stage_vars:  # analysis_run_builder.go:198-218: vars only exist when the Stage has some
        env["vars"] = {}
        for variable in stage_vars:
            try:
                env["vars"][variable["name"]] = evaluate_template(variable.get("value", ""), env, functions)
            except KargoError as error:
                raise VerificationArgError(f"evaluate variable {go_quote(variable['name'])}: {error}") from error
    result: dict[str, str] = {}
    for arg in (spec.get("verification") or {}).get("args") or []:
        if not arg.get("value"):  # analysis_run_builder.go:225: an empty value is not evaluated (no value)
            continue
        try:
            value = evaluate_template(arg["value"], env, functions)
        except KargoError as error:
            raise VerificationArgError(f"evaluate argument {go_quote(arg['name'])}: {error}") from error
        if type(value) is not str:  # analysis_run_builder.go:230-233
            raise VerificationArgError(
                f"evaluated argument {go_quote(arg['name'])} value is not a string but {go_type_of(value)}"
            )
        result[arg["name"]] = value
    return result
