"""Kargo's templates: ``EvaluateTemplate`` and ``EvaluateJSONTemplate`` (pkg/expressions/json_templates.go, v1.11.2).

Every ``${{ }}`` / ``${% %}`` in a string is an expr-lang expression; the expanded string is then coerced as a whole
(a number, a bool, any JSON, or the string). The template functions ``quote``, ``unsafeQuote`` and ``asJSON`` are
here; a step config is read back as ``StepEvaluator.Config`` does (pkg/promotion/evaluator.go).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import ModelLimit, TemplateError
from .expr import N_ANY, N_STRING, ExprFunction, Signature, compile_expr, function_table
from .go import (
    go_json_float,
    go_json_indent,
    go_json_marshal,
    go_json_unmarshal,
    go_parse_bool,
    go_parse_float,
    go_quote,
    is_number,
)

_DELIMITERS = (("${{", "}}"), ("${%", "%}"))  # json_templates.go:18-21


def _quote(value: Any) -> str:
    # json_templates.go:308-313: a string gets Go's %q; anything else goes to unsafeQuote.
    return go_quote(value) if type(value) is str else _unsafe_quote(value)


def _unsafe_quote(value: Any) -> str:
    # json_templates.go:318-324: JSON-marshal and wrap in double quotes, escapes kept as they are.
    try:
        return f'"{go_json_marshal(value)}"'
    except TemplateError as error:
        raise TemplateError(f"error applying quote() function: {error}") from None


def _as_json(value: Any) -> str:
    # json_templates.go:334-340: MarshalIndent with two spaces, then "\"%s\n\"".
    try:
        return f'"{go_json_indent(value)}\n"'
    except TemplateError as error:
        raise TemplateError(f"error applying asJSON() function: {error}") from None


_ANY_TO_STRING = (Signature((N_ANY,), N_STRING),)
# json_templates.go:135-157: added to every EvaluateTemplate call, as func(any) string.
_TEMPLATE_FUNCTIONS: dict[str, ExprFunction] = {
    "quote": ExprFunction("quote", _quote, _ANY_TO_STRING),
    "unsafeQuote": ExprFunction("unsafeQuote", _unsafe_quote, _ANY_TO_STRING),
    "asJSON": ExprFunction("asJSON", _as_json, _ANY_TO_STRING),
    "asYAML": ExprFunction("asYAML", lambda value: value, _ANY_TO_STRING, unsupported=True),
}


def _next_expression(template: str) -> tuple[str, str, str]:
    # json_templates.go:251-279: the earliest opening delimiter, closed by the FIRST matching closing one.
    start, chosen = -1, None
    for opening, closing in _DELIMITERS:
        index = template.find(opening)
        if index >= 0 and (start < 0 or index < start):
            start, chosen = index, (opening, closing)
    if chosen is None:
        return "", "", template
    expr_start = start + len(chosen[0])
    end = template.find(chosen[1], expr_start)
    if end < 0:
        raise TemplateError(f"unclosed expression: expected {go_quote(chosen[1])} but reached end of template")
    return template[:start], template[expr_start:end], template[end + len(chosen[1]) :]


def _coerce(result: str) -> Any:
    # json_templates.go:163-210 (v1.11.2)
    removed_newline = result.endswith("\n")  # 166-170
    if removed_newline:
        result = result[:-1]
    if len(result) > 1 and result.startswith('"') and result.endswith('"'):  # 181-187
        return result[1:-1] + ("\n" if removed_newline else "")
    number = go_parse_float(result)  # 194-196: before bools, so "0" and "1" are numbers
    if number is not None:
        return number
    boolean = go_parse_bool(result)  # 198-200
    if boolean is not None:
        return boolean
    ok, value = go_json_unmarshal(result)  # 202-205: any JSON, object and list included
    if ok:
        return value
    return result + ("\n" if removed_newline else "")  # 207-210


def evaluate_template(template: str, env: Mapping[str, Any], functions: Mapping[str, Any] | None = None) -> Any:
    """Kargo's ``EvaluateTemplate``: expand every ``${{ }}`` / ``${% %}``, then coerce the WHOLE value."""
    # json_templates.go:116-130: without a delimiter, the string is returned unchanged ("42" stays "42").
    if not any(opening in template for opening, _ in _DELIMITERS):
        return template
    table = {**function_table(functions), **_TEMPLATE_FUNCTIONS}
    parts: list[str] = []
    rest = template
    while True:  # json_templates.go:213-244
        before, expression, after = _next_expression(rest)
        parts.append(before)
        if expression == "":
            parts.append(after)
            break
        value = compile_expr(expression, table).run(env)
        # json_templates.go:283-303: a string result as is, anything else JSON-marshalled ("null" for nil).
        parts.append(value if type(value) is str else go_json_marshal(value))
        rest = after
    return _coerce("".join(parts))


def _go_json_input(value: Any) -> Any:
    # json_templates.go:56-60: the raw config is json.Unmarshal'ed, so every number becomes a float64.
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _go_json_input(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_go_json_input(item) for item in value]
    raise ModelLimit(f"a step config cannot hold {value!r}")


def _evaluate_collection(value: Any, env: Mapping[str, Any], functions: Mapping[str, Any] | None) -> Any:
    # json_templates.go:71-111: every string value, at any depth; keys are never evaluated.
    if isinstance(value, dict):
        return {key: _evaluate_collection(item, env, functions) for key, item in value.items()}
    if isinstance(value, list):
        return [_evaluate_collection(item, env, functions) for item in value]
    if isinstance(value, str):
        return evaluate_template(value, env, functions)
    return value


_YAML_INT = re.compile(r"-?[0-9]+")


def _yaml_v3_numbers(value: Any) -> Any:
    # pkg/promotion/evaluator.go:316-319 (v1.11.2): the evaluated JSON is read back with go.yaml.in/yaml/v3,
    # which makes integer-looking numbers Go ints ("5") and the rest float64 ("1.5", "1e+21").
    if isinstance(value, float) and not isinstance(value, bool):
        text = go_json_float(value)
        if _YAML_INT.fullmatch(text):
            if not -(2**63) <= int(text) < 2**63:
                raise ModelLimit(f"yaml.v3 decodes {text} as uint64 or float64; not modelled")
            return int(text)
        return value
    if isinstance(value, dict):
        return {key: _yaml_v3_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_yaml_v3_numbers(item) for item in value]
    return value


def evaluate_config(config: Any, env: Mapping[str, Any], functions: Mapping[str, Any] | None = None) -> Any:
    """Kargo's ``EvaluateJSONTemplate`` over a step config, read back as ``StepEvaluator.Config`` does."""
    # json_templates.go:46-65 (v1.11.2)
    for reserved in ("quote", "asYAML", "asJSON"):
        if reserved in env:
            raise TemplateError(
                f"{go_quote(reserved)} is a forbidden key in the environment map; it is reserved for internal use"
            )
    if not isinstance(config, Mapping):
        raise TemplateError(
            "input is not valid JSON; are all expressions enclosed in quotes? json: cannot unmarshal "
            f"{_json_kind(config)} into Go value of type map[string]interface {{}}"
        )
    evaluated = _evaluate_collection(_go_json_input(config), env, functions)
    text = go_json_marshal(evaluated)  # json_templates.go:64: NaN or +Inf from a coerced "NaN"/"inf" fail here
    # evaluator.go:316-319 (v1.11.2): `if err = yaml.Unmarshal(evaledCfgJSON, &config); err != nil {
    # return nil, nil }`. yaml.v3's reader refuses a character outside YAML's printable set
    # ("control characters are not allowed", readerc.go); encoding/json escapes those below U+0020
    # but writes U+007F, U+0080-U+009F and U+FFFE/U+FFFF as they are: the config is then nil.
    if any(not yaml_printable(char) for char in text):
        return None
    return _yaml_v3_numbers(evaluated)


def yaml_printable(char: str) -> bool:
    """YAML's printable set, which yaml.v3's reader enforces (readerc.go, yaml_parser_update_buffer)."""
    code = ord(char)
    return (
        code in (0x09, 0x0A, 0x0D, 0x85)
        or 0x20 <= code <= 0x7E
        or 0xA0 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, str):
        return "string"
    return "number" if is_number(value) else "null"
