"""One Promotion of one Stage, reconcile after reconcile, as Kargo v1.11.2's controller runs it.

The Stage's steps as the admission webhooks accept them (pkg/webhook/kubernetes/promotion), the expression
environments and ``if``/vars/config evaluation (pkg/promotion/evaluator.go), the step loop
(pkg/promotion/local_orchestrator.go, local_executor.go, orchestrator.go), and the Promotion reconciler around it
(pkg/controller/promotions/promotions.go): status written as JSON between reconciles, requeue delays and backoff
on a simulated clock.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import KargoError, ModelLimit, PromotionRejected, TemplateError
from .expr import ExprFunction
from .functions import (
    Freight,
    freight_context,
    requested_origins,
    stage_functions,
    status_functions,
    target_freight,
)
from .go import NIL_MAP, GoInt64, GoState, go_duration_string, go_json_marshal, go_parse_duration, go_quote, go_type_of
from .http_step import HttpHandler, HttpRequest, run_http
from .steps import (
    MODELLED_STEP_KINDS,
    REGISTERED_STEP_KINDS,
    StepError,
    StepMeta,
    StepResult,
    has_failures,
    run_compose_output,
    run_fail,
    validate_config,
)
from .templates import evaluate_config, evaluate_template

_DEFAULT_ERROR_THRESHOLD = 1  # pkg/promotion/registry.go:29-34 (v1.11.2)
_RESERVED_ALIAS = re.compile(r"^(step|task)-\d+$")  # pkg/promotion/local_engine.go:18 (v1.11.2)
_SEVERITY = {"Succeeded": 0, "Skipped": 1, "Running": 2, "Aborted": 3, "Failed": 4, "Errored": 5}
NOT_EVALUATED = object()  # StepOutcome.if_value of a step whose ``if`` was not evaluated


@dataclass
class _Step:
    uses: str
    alias: str
    if_: str
    continue_on_error: bool
    config: Any  # None when the step has no config
    error_threshold: int
    timeout: float | None
    vars: list[tuple[str, str]]


@dataclass
class StepOutcome:
    """One step as the Promotion's status shows it, plus what the model saw on the way."""

    alias: str
    status: str  # Succeeded | Skipped | Running | Failed | Errored | "" (never reached)
    message: str
    error_count: int
    config: Any  # the last evaluated config it ran with (None if never built)
    if_value: Any  # what its ``if`` evaluated to, or NOT_EVALUATED (no ``if``, or never reached)


@dataclass
class PromotionResult:
    """The end of a simulated Promotion: its phase and message, each step, every HTTP request sent."""

    phase: str  # Succeeded | Failed | Errored | Running (still running when the simulation stopped)
    message: str
    steps: list[StepOutcome]
    requests: list[HttpRequest]
    state: dict[str, Any]  # the shared state (outputs) at the end
    reconciles: int

    def step(self, alias: str) -> StepOutcome:
        """The outcome of the step with this alias."""
        for outcome in self.steps:
            if outcome.alias == alias:
                return outcome
        raise KeyError(alias)

    @property
    def if_values(self) -> dict[str, Any]:
        """alias -> the value its ``if`` evaluated to, for the steps whose ``if`` was evaluated."""
        return {o.alias: o.if_value for o in self.steps if o.if_value is not NOT_EVALUATED}


class _ControllerPanic(Exception):
    """A panic outside the step runners; the Promotion reconciler recovers it (promotions.go:403-433)."""


def _deep_copy_json_check(state: Mapping[str, Any]) -> None:
    """k8s.io/apimachinery's ``runtime.DeepCopyJSON`` of the shared state, which BuildStepContext calls
    (pkg/promotion/evaluator.go:348, state.go:26-34 (v1.11.2)): only map[string]any, []any, string, int64, bool,
    float64, json.Number and nil can be copied; anything else (a Go ``int`` from an expression or from yaml.v3, an
    http.Header, a nested State) panics with "cannot deep copy <type>"."""

    def check(value: Any) -> None:
        if value is None or isinstance(value, (bool, float, GoInt64)) or type(value) is str or value is NIL_MAP:
            return
        if type(value) is dict:
            for item in value.values():
                check(item)
            return
        if type(value) is list:
            for item in value:
                check(item)
            return
        raise _ControllerPanic(f"cannot deep copy {go_type_of(value)}")

    for item in state.values():
        check(item)


def _persisted(value: Any) -> Any:
    # promotions.go:624 + state.go:37-43: State.ToJSON (nil when empty or on a marshal error), read back by
    # PromotionStatus.GetState (promotion_types.go:369-379, sigs.k8s.io/yaml): typed nils become nil and
    # every number float64.
    try:
        text = go_json_marshal(value)
    except TemplateError:
        return {}
    return json.loads(text, parse_int=float)


def _evaluate_var(name: str, value: str, env: Mapping[str, Any], functions: Mapping[str, ExprFunction]) -> Any:
    # evaluator.go:168-217 (v1.11.2): one variable, its error wrapped with the variable's name.
    try:
        return evaluate_template(value, env, functions)
    except KargoError as error:
        raise KargoError(f"error pre-processing promotion variable {go_quote(name)}: {error}") from error


class _Promotion:
    """The state of one simulated Promotion across reconciles."""

    def __init__(
        self,
        stage: Mapping[str, Any],
        freight: Freight,
        references: Sequence[Freight],
        warehouses: Mapping[str, Sequence[str]],
        secrets: Mapping[str, Mapping[str, str]],
        config_maps: Mapping[str, Mapping[str, str]],
        http: HttpHandler | None,
        clock: float,
        promotion: str,
        actor: str,
        ui_base_url: str,
    ) -> None:
        self.name = stage["metadata"]["name"]
        self.project = stage["metadata"].get("namespace", "")
        self.freight = freight
        self.freight_context = freight_context(stage, references, warehouses)
        self.secrets = secrets
        self.config_maps = config_maps
        self.http = http
        self.now = clock
        self.promotion = promotion
        self.actor = actor
        self.ui_base_url = ui_base_url
        self.steps = _steps(stage)
        spec = stage.get("spec") or {}
        # pkg/webhook/kubernetes/promotion/webhook.go:251-258 (v1.11.2): Stage vars, then the template's.
        template_vars = (spec.get("promotionTemplate") or {}).get("spec", {}).get("vars") or []
        self.vars = [(v["name"], v.get("value", "")) for v in [*(spec.get("vars") or []), *template_vars]]
        self.state: dict[str, Any] = {}
        self.metas: list[StepMeta] = []
        self.current_step = 0
        self.requests: list[HttpRequest] = []
        self.configs: dict[str, Any] = {}
        self.if_values: dict[str, Any] = {}
        self.current_alias = ""

    # --- expression environments (pkg/promotion/evaluator.go, v1.11.2) ---

    def ctx_env(self) -> dict[str, Any]:
        # evaluator.go:102-158 (BuildCtxMap, BuildExprEnv)
        return {
            "ctx": {
                "uiBaseUrl": self.ui_base_url,
                "project": self.project,
                "promotion": self.promotion,
                "stage": self.name,
                "targetFreight": {
                    "name": self.freight.name,
                    "alias": self.freight.alias,
                    "origin": {"name": self.freight.origin},
                },
                "meta": {
                    "promotion": {"actor": self.actor, "rollback": False},
                    "step": {"alias": self.current_alias},
                },
            }
        }

    def full_env(self, variables: dict[str, Any]) -> dict[str, Any]:
        # evaluator.go:237-243 / 288-294: ctx, stepMetas, outputs and vars (task outputs only for "::" aliases).
        return {
            **self.ctx_env(),
            "stepMetas": {m.alias: m.go_value() for m in self.metas},
            "outputs": GoState(self.state),
            "vars": variables,
        }

    def functions(self, *, status: bool) -> dict[str, ExprFunction]:
        table = stage_functions(self.freight_context, self.secrets, self.config_maps)
        if status:
            table.update(status_functions(self.metas))
        return table

    def evaluate_vars(self, step: _Step) -> dict[str, Any]:
        # evaluator.go:168-217 (v1.11.2): promotion vars see ctx and earlier vars; step vars also see outputs.
        variables: dict[str, Any] = {}
        functions = self.functions(status=False)
        for name, value in self.vars:
            variables[name] = _evaluate_var(name, value, {**self.ctx_env(), "vars": variables}, functions)
        for name, value in step.vars:
            variables[name] = _evaluate_var(name, value, self.full_env(variables), functions)
        return variables

    def should_skip(self, step: _Step) -> bool:
        # evaluator.go:224-272 (v1.11.2): without an ``if``, a step is skipped after a failure.
        if step.if_ == "":
            return has_failures(self.metas)
        variables = self.evaluate_vars(step)
        value = evaluate_template(step.if_, self.full_env(variables), self.functions(status=True))
        self.if_values[step.alias] = value
        if isinstance(value, bool):
            return not value
        raise KargoError(f"expression must evaluate to a boolean, got {go_type_of(value)}")

    def step_config(self, step: _Step) -> Any:
        # evaluator.go:278-321 (v1.11.2): no config -> nil; then EvaluateJSONTemplate; then yaml.v3.
        if step.config is None:
            return None
        variables = self.evaluate_vars(step)
        return evaluate_config(step.config, self.full_env(variables), self.functions(status=True))

    # --- the step runners ---

    def run_step(self, step: _Step, config: Any) -> tuple[StepResult, StepError | None]:
        # Every modelled runner validates its config first: failer.go:40-63, output_composer.go:64-88,
        # http_requester.go:71-88 (v1.11.2).
        problem = validate_config(step.uses, config)
        if problem:
            return StepResult("Failed"), problem
        if step.uses == "fail":
            return run_fail(config)
        if step.uses == "compose-output":
            return run_compose_output(config)
        return run_http(step.alias, config, self.http, self.now, self.requests)

    # --- the orchestrator (pkg/promotion/local_orchestrator.go, v1.11.2) ---

    def meta_for(self, step: _Step) -> StepMeta:
        # pkg/promotion/promotion.go:213-230 (v1.11.2): found by alias, else appended.
        for meta in self.metas:
            if meta.alias == step.alias:
                return meta
        meta = StepMeta(step.alias, step.continue_on_error)
        self.metas.append(meta)
        return meta

    def execute_steps(self) -> tuple[str, str, int, StepError | None, float | None]:
        """One reconcile: (phase, message, current step, retryable error, suggested requeue)."""
        for index in range(self.current_step, len(self.steps)):  # local_orchestrator.go:71
            step = self.steps[index]
            meta = self.meta_for(step)
            self.current_alias = step.alias
            if meta.started_at is None:  # local_orchestrator.go:105-121: "if" only before the step starts
                try:
                    skip = self.should_skip(step)
                except KargoError as error:
                    meta.status = "Errored"
                    meta.message = f"error checking if step {go_quote(step.alias)} should be skipped: {error}"
                    continue
                if skip:
                    meta.status = "Skipped"
                    continue
            if step.uses not in REGISTERED_STEP_KINDS:  # local_orchestrator.go:130-144
                meta.status = "Errored"
                meta.message = (
                    f"step kind {go_quote(step.uses)} is not registered; verify the kind is correct; if you are a "
                    "Kargo Enterprise user, you may need to enable the promotion controller"
                )
                continue
            if step.uses not in MODELLED_STEP_KINDS:
                raise ModelLimit(f"step kind {step.uses!r} is registered in Kargo but not modelled")
            if meta.started_at is None:  # promotion.go:362-368: Started() resets the error count once
                meta.started_at = self.now
                meta.error_count = 0
            try:  # local_orchestrator.go:150-156
                config = self.step_config(step)
            except KargoError as error:
                meta.status = "Errored"
                meta.message = f"failed to build step context: failed to get step config: {error}"
                continue
            _deep_copy_json_check(self.state)
            self.configs[step.alias] = config
            result, error = self.run_step(step, config)
            if error is not None:  # local_executor.go:88-97 (v1.11.2)
                prefix = "error running step" if result.status == "Errored" else "step"
                error = StepError(f"{prefix} {go_quote(step.alias)}: {error.message}", error.terminal)
            self.state[step.alias] = result.output  # local_orchestrator.go:212-233 (propagateStepOutput)
            error = self.reconcile_result(meta, step, result, error)
            if not self.complete(meta, step, error):  # local_orchestrator.go:179-189
                return "Running", meta.message if error else "", index, error, result.retry_after
        phase, message = self.final_phase()
        return phase, message, len(self.steps) - 1, None, None

    def reconcile_result(
        self, meta: StepMeta, step: _Step, result: StepResult, error: StepError | None
    ) -> StepError | None:
        # local_orchestrator.go:235-270 (v1.11.2)
        meta.status, meta.message = result.status, result.message
        if error is not None:
            if meta.status != "Failed":
                meta.status = "Errored"
            meta.message = error.message
            return error
        if result.status == "Errored":
            return StepError(f"step {go_quote(step.alias)} errored: {meta.message or 'no details provided'}", False)
        return None

    def complete(self, meta: StepMeta, step: _Step, error: StepError | None) -> bool:
        # local_orchestrator.go:272-345 (v1.11.2)
        if meta.status in ("Succeeded", "Skipped"):
            return True
        if error is not None and error.terminal:
            if meta.status == "Failed":
                meta.message = error.message
            else:
                meta.status = "Errored"
                meta.message = f"an unrecoverable error occurred: {error.message}"
            return True
        if error is not None:
            meta.error_count += 1
            threshold = step.error_threshold or _DEFAULT_ERROR_THRESHOLD
            if meta.error_count >= threshold:
                meta.status = "Failed" if meta.status == "Failed" else "Errored"
                meta.message = f"step {go_quote(step.alias)} met error threshold of {threshold}: {meta.message}"
                return True
        timeout = step.timeout or 0.0  # no modelled step kind has a default timeout (registry.go:63-75)
        if timeout > 0 and meta.started_at is not None and self.now - meta.started_at > timeout:
            meta.status = "Errored"
            meta.message = f"step {go_quote(step.alias)} timed out after {go_duration_string(timeout)}"
            return True
        if error is not None:
            meta.message = f"{meta.message}; step will be retried"
        return False

    def final_phase(self) -> tuple[str, str]:
        # pkg/promotion/orchestrator.go:30-61 (v1.11.2): the worst status (continueOnError steps aside) decides.
        worst, message = "Succeeded", ""
        for index, meta in enumerate(self.metas):
            if self.steps[index].continue_on_error:
                continue
            if _SEVERITY[meta.status or "Succeeded"] > _SEVERITY[worst]:
                worst, message = meta.status, meta.message
        phase = {"Succeeded": "Succeeded", "Skipped": "Succeeded", "Aborted": "Aborted", "Failed": "Failed"}
        return phase.get(worst, "Errored"), message

    def requeue_after(self, previous_step: int, previous_metas: list[StepMeta], suggested: float | None) -> float:
        # pkg/controller/promotions/promotions.go:841-898 (v1.11.2), computed from the status read at the start
        # of the reconcile: a suggestion is floored at 10s, none means 5m, and a step timeout caps it.
        interval = 300.0 if suggested is None else max(suggested, 10.0)
        if previous_step >= len(self.steps):
            return interval
        step = self.steps[previous_step]
        if step.uses not in REGISTERED_STEP_KINDS or not step.timeout:
            return interval
        if previous_step >= len(previous_metas) or previous_metas[previous_step].started_at is None:
            return interval
        target = previous_metas[previous_step].started_at + step.timeout
        return target - self.now if target < self.now + interval else interval

    def outcomes(self) -> list[StepOutcome]:
        by_alias = {m.alias: m for m in self.metas}
        outcomes = []
        for step in self.steps:
            meta = by_alias.get(step.alias, StepMeta(step.alias, step.continue_on_error))
            outcomes.append(
                StepOutcome(
                    step.alias,
                    meta.status,
                    meta.message,
                    meta.error_count,
                    self.configs.get(step.alias),
                    self.if_values.get(step.alias, NOT_EVALUATED),
                )
            )
        return outcomes


def _steps(stage: Mapping[str, Any]) -> list[_Step]:
    spec = stage.get("spec") or {}
    raw_steps = ((spec.get("promotionTemplate") or {}).get("spec") or {}).get("steps") or []
    if not raw_steps:  # pkg/webhook/kubernetes/promotion/webhook.go:230-244 (v1.11.2)
        raise PromotionRejected(f"Stage {stage['metadata']['name']!r} defines no promotion steps")
    steps: list[_Step] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_steps):
        if "task" in raw:
            raise ModelLimit("steps that reference a PromotionTask are not modelled")
        if not raw.get("uses"):  # api/v1alpha1/promotion_types.go:199 (CEL rule)
            raise PromotionRejected(f"step {index}: Promotion step must have uses set and must not reference a task")
        explicit = (raw.get("as") or "").strip()
        # pkg/webhook/kubernetes/promotion_steps.go:13-51 (v1.11.2): duplicate or reserved aliases are refused.
        if explicit and explicit in seen:
            raise PromotionRejected(f"step {index}: step alias {explicit!r} duplicates an earlier one")
        if explicit and _RESERVED_ALIAS.match(explicit):
            raise PromotionRejected(f"step {index}: step alias {explicit!r} is reserved")
        seen.add(explicit)
        alias = raw.get("as") or f"step-{index + 1}"  # promotion_types.go:317-326 + api/promotion.go:290
        if "::" in alias:
            raise ModelLimit("task-namespaced aliases (::) are not modelled")
        retry = raw.get("retry") or {}
        try:
            timeout = go_parse_duration(retry["timeout"]) if retry.get("timeout") else None
        except ValueError as error:
            raise PromotionRejected(f"step {alias!r}: retry.timeout: {error}") from None
        steps.append(
            _Step(
                raw["uses"],
                alias,
                raw.get("if", "") or "",
                bool(raw.get("continueOnError")),
                raw.get("config"),
                int(retry.get("errorThreshold") or 0),
                timeout,
                [(v["name"], v.get("value", "")) for v in raw.get("vars") or []],
            )
        )
    return steps


def _controller_backoff(failures: int) -> float:
    """The progressive backoff after a retryable error (promotions.go:529-539 (v1.11.2) returns the error to
    controller-runtime): client-go's default controller rate limiter, 5ms * 2^failures, at most 1000s."""
    return min(0.005 * 2**failures, 1000.0)


_RECONCILE_TIME = 0.001  # seconds a reconcile takes on the simulated clock


def run_promotion(
    stage: Mapping[str, Any],
    *,
    freight: Freight | Mapping[str, Any],
    warehouses: Mapping[str, Sequence[str]],
    secrets: Mapping[str, Mapping[str, str]] | None = None,
    config_maps: Mapping[str, Mapping[str, str]] | None = None,
    http: HttpHandler | None = None,
    inherited_freight: Iterable[Freight | Mapping[str, Any]] = (),
    clock: float = 0.0,
    max_reconciles: int = 1000,
    promotion: str = "promotion",
    actor: str = "",
    ui_base_url: str = "",
    error_backoff: Callable[[int], float] = _controller_backoff,
) -> PromotionResult:
    """Run one Promotion of ``stage`` to ``freight`` the way Kargo v1.11.2's controller does.

    Each reconcile runs the step loop from the current step (``LocalOrchestrator.ExecuteSteps``); between
    reconciles the shared state goes through the Promotion's status as JSON (typed nils become nil, numbers
    float64) and the simulated clock moves by the requeue delay Kargo asks for (a Running step's poll
    interval, or progressive backoff after a retryable error). ``http`` answers each request the http step
    sends, or raises for a transport error. Stops when the Promotion ends or after ``max_reconciles``.
    """
    target = target_freight(freight, stage)
    references = [target]
    if len(requested_origins(stage)) > 1:  # promotions.go:675-701: inherited Freight only for several origins
        references += [Freight.of(f) for f in inherited_freight]
    run = _Promotion(
        stage,
        target,
        references,
        warehouses,
        secrets or {},
        config_maps or {},
        http,
        clock,
        promotion,
        actor,
        ui_base_url,
    )
    failures, reconciles = 0, 0
    phase, message = "Running", ""
    while reconciles < max_reconciles:
        reconciles += 1
        previous_step = run.current_step
        previous_metas = [StepMeta(**vars(m)) for m in run.metas]
        try:
            phase, message, run.current_step, error, retry_after = run.execute_steps()
        except _ControllerPanic as panic:
            # promotions.go:403-433: the panic is recovered; the status is the one read before, Errored.
            run.metas = previous_metas
            phase, message = "Errored", str(panic)
            break
        if phase != "Running":
            break
        # promotions.go:619-636: the status is written; its state goes through JSON, times to seconds.
        run.state = _persisted(run.state)
        for meta in run.metas:
            meta.started_at = None if meta.started_at is None else math.floor(meta.started_at)
        if error is not None:  # promotions.go:529-539: a retryable error: progressive backoff
            delay = error_backoff(failures)
            failures += 1
        else:  # promotions.go:541-544
            failures = 0
            delay = run.requeue_after(previous_step, previous_metas, retry_after)
            if delay <= 0:
                # controller-runtime only requeues a positive RequeueAfter; nothing else wakes the Promotion.
                break
        run.now += delay + _RECONCILE_TIME
    return PromotionResult(phase, message, run.outcomes(), run.requests, dict(run.state), reconciles)
