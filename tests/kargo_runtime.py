"""What Kargo v1.11.2 does at run time with a generated Stage: a test oracle.

Schema-valid manifests have failed at run time before: a body written as JSON text that Kargo turns into
an object, an expression cut short at its first ``}}``, an output that is a typed nil after a failed step.
This module models, rule by rule, what Kargo v1.11.2 (with expr-lang v1.17.8 inside it) does:

* :func:`evaluate_template`, :func:`evaluate_config`: ``${{ }}`` templates and their coercion.
* :func:`compile_expr` / :class:`CompiledExpr`: the expr-lang subset that Kargo configs use.
* :func:`run_promotion`: one Promotion of one Stage, reconcile after reconcile, on a simulated clock.
* :func:`evaluate_verification_args`: ``spec.verification.args``.

Every rule cites its source at the tag: ``akuity/kargo`` paths at v1.11.2, ``expr-lang`` paths at v1.17.8,
``Go`` for the standard library. Where the model cannot tell what Kargo would do it raises :class:`ModelLimit`
instead of guessing. Error texts follow Kargo's; expr-lang's ``(line:column)`` suffixes are approximate.
"""

from __future__ import annotations

import json
import math
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import jsonschema

# ---------------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------------


class ModelLimit(Exception):
    """The model cannot tell what Kargo would do here, so it refuses rather than guesses."""


class KargoError(Exception):
    """An error Kargo itself reports; ``str()`` follows Kargo's wording."""


class ExprError(KargoError):
    """expr-lang rejected an expression while compiling (``phase == "compile"``) or running it (``"run"``)."""

    def __init__(self, message: str, phase: str, source: str = "", position: int | None = None) -> None:
        self.message = message
        self.phase = phase
        self.source = source
        self.position = position
        super().__init__(_format_expr_error(message, source, position))


class UnsupportedExprError(ExprError, ModelLimit):
    """An expression (or a part of one) that this model does not evaluate."""


class TemplateError(KargoError):
    """An error of Kargo's template layer (``pkg/expressions/json_templates.go``) or of Go's encoding/json."""


class VerificationArgError(KargoError):
    """A verification argument Kargo cannot turn into an AnalysisRun argument."""


class PromotionRejected(Exception):
    """Kargo's admission webhooks would refuse the Promotion (or the Stage) before any step runs."""


def _format_expr_error(message: str, source: str, position: int | None) -> str:
    # expr-lang file/error.go:22-86 (v1.17.8): "message (line:column)" and a snippet pointing at the column.
    if position is None or not source:
        return message
    line, column, line_start = 1, 0, 0
    for index, char in enumerate(source[:position]):
        if char == "\n":
            line, column, line_start = line + 1, 0, index + 1
        else:
            column += 1
    line_end = source.find("\n", line_start)
    text = source[line_start : len(source) if line_end < 0 else line_end]
    if not text:
        return message
    return f"{message} ({line}:{column + 1})\n | {text.replace(chr(9), ' ')}\n | {'.' * column}^"


# ---------------------------------------------------------------------------------------------------------------
# Go values: Python values stand for Go's (dict = map[string]any, list = []any, int = int, float = float64);
# the classes below stand for the Go types whose behaviour differs.
# ---------------------------------------------------------------------------------------------------------------


class TypedNil:
    """A nil of a concrete Go type, e.g. ``map[string]any(nil)``: nil for ``== nil``, yet a map for ``.key``."""

    __slots__ = ("go_type", "kind")

    def __init__(self, go_type: str, kind: str) -> None:
        self.go_type = go_type
        self.kind = kind  # "map" | "slice" | "ptr"

    def __repr__(self) -> str:
        return f"TypedNil({self.go_type!r})"


NIL_MAP = TypedNil("map[string]interface {}", "map")  # a step's Output when it produced none
NIL_STRING_MAP = TypedNil("map[string]string", "map")
NIL_IMAGE = TypedNil("*v1alpha1.Image", "ptr")  # imageFrom() finding nothing
NIL_STRINGS = TypedNil("[]string", "slice")  # a missing key of http.Header


class GoInt64(int):
    """A Go int64 (an HTTP status); a plain ``int`` is Go's ``int``."""


class GoUint32(int):
    """A Go uint32 (StepExecutionMetadata.ErrorCount)."""


class GoNamedString(str):
    """A value of a named string type (e.g. ``v1alpha1.PromotionStepStatus``): not ``== "..."`` to a string."""

    go_type: str

    def __new__(cls, value: str, go_type: str) -> GoNamedString:
        obj = super().__new__(cls, value)
        obj.go_type = go_type
        return obj


class GoStringMap(dict):
    """A Go ``map[string]string`` (what ``secret()`` returns): a missing key reads as ``""``."""


class GoStrings(list):
    """A Go ``[]string`` (the values of one header in ``response.headers``)."""


class GoHeader(dict):
    """Go's ``http.Header``: canonical header name -> :class:`GoStrings`."""


class GoState(dict):
    """Kargo's ``promotion.State`` (``outputs``): alias -> the step's Output."""


@dataclass(frozen=True, eq=False)
class GoStruct:
    """A Go struct (``pointer``: a pointer to one); fields by Go name, ``json_tags`` as (field, json name)."""

    go_type: str
    fields: Mapping[str, Any]
    json_tags: tuple[tuple[str, str], ...] = ()
    pointer: bool = False


@dataclass(frozen=True, eq=False)
class GoFunc:
    """A Go function value (``response.header`` is ``http.Header.Get``)."""

    go_type: str
    fn: Callable[..., Any]
    num_in: int


@dataclass(frozen=True)
class GoOpaque:
    """A Go value the model does not represent (``*metav1.Time``); touching it raises :class:`ModelLimit`."""

    go_type: str


def is_nil(value: Any) -> bool:
    """expr-lang's IsNil: untyped nil or a typed nil map/slice/pointer."""
    # expr-lang vm/runtime/runtime.go:428-438 (v1.17.8)
    return value is None or isinstance(value, TypedNil)


def go_type_of(value: Any) -> str:
    """Go's ``%T`` of a modelled value."""
    checks: tuple[tuple[type, str], ...] = (
        (bool, "bool"),
        (GoInt64, "int64"),
        (GoUint32, "uint32"),
        (int, "int"),
        (float, "float64"),
    )
    if value is None:
        return "<nil>"
    for python_type, name in checks:
        if isinstance(value, python_type):
            return name
    if isinstance(value, (GoNamedString, TypedNil, GoFunc, GoOpaque)):
        return value.go_type
    if isinstance(value, str):
        return "string"
    if isinstance(value, GoStruct):
        return ("*" if value.pointer else "") + value.go_type
    for python_type, name in (
        (GoStringMap, "map[string]string"),
        (GoHeader, "http.Header"),
        (GoState, "promotion.State"),
        (dict, "map[string]interface {}"),
        (GoStrings, "[]string"),
        (list, "[]interface {}"),
    ):
        if isinstance(value, python_type):
            return name
    raise ModelLimit(f"no Go type stands for the Python value {value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _go_v(value: Any) -> str:
    """Go's ``%v`` for the scalar values that appear in expr-lang's messages."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_format_float(value, "g")
    return str(value)


# ---------------------------------------------------------------------------------------------------------------
# Go standard library behaviour: strconv, encoding/json, fmt %q, time.ParseDuration, net/textproto
# ---------------------------------------------------------------------------------------------------------------


def _shortest_digits(value: float) -> tuple[str, int]:
    """The shortest digits that read back as ``abs(value)`` (as Go's 'f'/'e' with precision -1): value = D * 10^E."""
    if value == 0:
        return "0", 0
    _, digits, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    return "".join(map(str, digits)), int(exponent)


def _go_format_float(value: float, fmt: str) -> str:
    # Go src/strconv/ftoa.go, FormatFloat(f, fmt, -1, 64) for fmt 'f', 'e' and 'g'.
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    digits, exponent = _shortest_digits(value)
    exp10 = exponent + len(digits) - 1
    if fmt == "g":  # shortest 'g' switches to 'e' below 1e-4 and from 1e6 (eprec 6 when shortest)
        fmt = "e" if exp10 < -4 or exp10 >= 6 else "f"
    if fmt == "e":
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'+' if exp10 >= 0 else '-'}{abs(exp10):02d}"
    if exponent >= 0:
        return sign + digits + "0" * exponent
    point = len(digits) + exponent
    if point > 0:
        return f"{sign}{digits[:point]}.{digits[point:]}"
    return f"{sign}0.{'0' * -point}{digits}"


def _go_json_float(value: float) -> str:
    # Go src/encoding/json/encode.go floatEncoder: 'e' below 1e-6 and from 1e21, then e-07 -> e-7.
    if math.isnan(value) or math.isinf(value):
        raise TemplateError(f"json: unsupported value: {_go_format_float(value, 'g')}")
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = _go_format_float(value, "e")
        if len(text) >= 4 and text[-4] == "e" and text[-3] == "-" and text[-2] == "0":
            text = text[:-2] + text[-1]
        return text
    return _go_format_float(value, "f")


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _go_json_string(text: str) -> str:
    # Go src/encoding/json/encode.go appendString with HTML escaping (json.Marshal's default): <, >, & and
    # U+2028/U+2029 as \u escapes, \b and \f short forms (Go 1.22+), invalid UTF-8 as U+FFFD.
    out = ['"']
    for char in text:
        code = ord(char)
        if char in _JSON_ESCAPES:
            out.append(_JSON_ESCAPES[char])
        elif code < 0x20 or char in "<>&" or code in (0x2028, 0x2029):
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\ufffd")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _json_empty(value: Any) -> bool:
    if value is None or isinstance(value, TypedNil) or value is False:
        return True
    if isinstance(value, (str, dict, list)):
        return len(value) == 0
    return _is_number(value) and value == 0


def go_json_marshal(value: Any) -> str:
    """Go's ``json.Marshal`` of a modelled value: sorted keys, no spaces, HTML-safe strings, Go float format."""
    if value is None or isinstance(value, TypedNil):
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return _go_json_float(value)
    if isinstance(value, str):
        return _go_json_string(value)
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise ModelLimit(f"map keys must be strings: {value!r}")
        items = (f"{_go_json_string(key)}:{go_json_marshal(value[key])}" for key in sorted(value))
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(go_json_marshal(item) for item in value) + "]"
    if isinstance(value, GoStruct):
        # All modelled Kargo structs tag every field omitempty (api/v1alpha1/stage_types.go:670-681 (v1.11.2)).
        pairs = [(name, value.fields[go_name]) for go_name, name in value.json_tags]
        return "{" + ",".join(f'"{name}":{go_json_marshal(v)}' for name, v in pairs if not _json_empty(v)) + "}"
    if isinstance(value, GoFunc):
        raise TemplateError(f"json: unsupported type: {value.go_type}")
    if isinstance(value, GoOpaque):
        raise ModelLimit(f"the model cannot marshal a {value.go_type}")
    raise ModelLimit(f"no Go value stands for {value!r}")


def _go_json_indent(value: Any, level: int = 0) -> str:
    # Go src/encoding/json/indent.go: json.MarshalIndent(v, "", "  ").
    pad = "  " * (level + 1)
    if isinstance(value, dict) and value and not isinstance(value, GoStruct):
        items = [f"{pad}{_go_json_string(k)}: {_go_json_indent(value[k], level + 1)}" for k in sorted(value)]
        return "{\n" + ",\n".join(items) + "\n" + "  " * level + "}"
    if isinstance(value, list) and value:
        items = [pad + _go_json_indent(item, level + 1) for item in value]
        return "[\n" + ",\n".join(items) + "\n" + "  " * level + "]"
    if isinstance(value, GoStruct):
        return _go_json_indent(json.loads(go_json_marshal(value)), level)
    return go_json_marshal(value)


def _go_is_print(char: str) -> bool:
    # Go src/unicode/graphic.go IsPrint: letters, marks, numbers, punctuation, symbols and U+0020.
    return char == " " or unicodedata.category(char)[0] in "LMNPS"


_QUOTE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote`` (``fmt.Sprintf("%q", s)``): Go escapes, printable Unicode kept."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        elif _go_is_print(char):
            out.append(char)
        elif char in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[char])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _underscore_ok(text: str) -> bool:
    # Go src/strconv/atoi.go underscoreOK: underscores only between digits or after a base prefix.
    saw, i = "^", 0
    if text[:1] in ("+", "-"):
        text = text[1:]
    hexadecimal = False
    if len(text) >= 2 and text[0] == "0" and text[1].lower() in "box":
        i, saw, hexadecimal = 2, "0", text[1].lower() == "x"
    for char in text[i:]:
        if char.isascii() and (char.isdigit() or (hexadecimal and char.lower() in "abcdef")):
            saw = "0"
        elif char == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"


_DEC_FLOAT = re.compile(r"[+-]?(?P<m>[0-9_]*\.?[0-9_]*)(?:[eE][+-]?[0-9][0-9_]*)?")
_HEX_FLOAT = re.compile(r"[+-]?0[xX](?P<m>[0-9a-fA-F_]*\.?[0-9a-fA-F_]*)[pP][+-]?[0-9][0-9_]*")


def go_parse_float(text: str) -> float | None:
    """Go's ``strconv.ParseFloat(s, 64)``, or None where Go returns an error (syntax, or out of range)."""
    # Go src/strconv/atof.go special(): "inf"/"infinity" with an optional sign, "nan" without one.
    lowered = text.lower()
    if lowered.lstrip("+-") in ("inf", "infinity") and len(lowered) - len(lowered.lstrip("+-")) <= 1:
        return -math.inf if lowered.startswith("-") else math.inf
    if lowered == "nan":
        return math.nan
    # Go src/strconv/atof.go readFloat(): a hex mantissa needs a 'p' exponent; at least one digit; underscores
    # checked by underscoreOK; the whole string must be consumed; overflow is ErrRange (an error).
    hexadecimal = len(text.lstrip("+-")) > 2 and text.lstrip("+-")[:2].lower() == "0x"
    match = (_HEX_FLOAT if hexadecimal else _DEC_FLOAT).fullmatch(text)
    if match is None or not any(c not in "._" for c in match.group("m")):
        return None
    if "_" in text and not _underscore_ok(text):
        return None
    plain = text.replace("_", "")
    try:
        result = float.fromhex(plain) if hexadecimal else float(plain)
    except (OverflowError, ValueError):
        return None
    return None if math.isinf(result) else result


def go_parse_bool(text: str) -> bool | None:
    """Go's ``strconv.ParseBool``, or None where Go returns an error."""
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    return None


_SURROGATES = re.compile("[\ud800-\udfff]")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def _json_number(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"json: cannot unmarshal number {text} into Go value of type float64")
    return number


def _fix_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATES.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_fix_surrogates(k): _fix_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fix_surrogates(item) for item in value]
    return value


def go_json_unmarshal(text: str | bytes) -> tuple[bool, Any]:
    """Go's ``json.Unmarshal`` into ``any``: (ok, value); numbers are float64, NaN/Infinity are not JSON."""
    try:
        decoded = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        value = json.loads(decoded, parse_float=_json_number, parse_int=_json_number, parse_constant=_reject_constant)
    except ValueError:
        return False, None
    return True, _fix_surrogates(value)


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
_DURATION_UNITS["h"] = 3600.0
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]*)")


def go_parse_duration(text: str) -> float:
    """Go's ``time.ParseDuration``, in seconds; raises ValueError with Go's message."""
    # Go src/time/format.go ParseDuration: [-+]?([0-9]*(\.[0-9]*)?[a-z]+)+, or "0".
    original, rest, total = text, text, 0.0
    sign = -1.0 if rest.startswith("-") else 1.0
    rest = rest.lstrip("+-") if rest[:1] in "+-" else rest
    if rest == "0":
        return 0.0
    if not rest:
        raise ValueError(f"time: invalid duration {go_quote(original)}")
    while rest:
        match = _DURATION_PART.match(rest)
        number, unit = (match.group(1), match.group(2)) if match else ("", "")
        if not number or number == ".":
            raise ValueError(f"time: invalid duration {go_quote(original)}")
        if not unit:
            raise ValueError(f"time: missing unit in duration {go_quote(original)}")
        if unit not in _DURATION_UNITS:
            raise ValueError(f"time: unknown unit {go_quote(unit)} in duration {go_quote(original)}")
        total += float(number) * _DURATION_UNITS[unit]
        rest = rest[len(number) + len(unit) :]
    return sign * total


def go_duration_string(seconds: float) -> str:
    """Go's ``time.Duration.String()`` (``1h0m0s``, ``2m30s``, ``500ms``)."""
    nanos = round(seconds * 1e9)
    if nanos == 0:
        return "0s"
    sign, nanos = ("-", -nanos) if nanos < 0 else ("", nanos)

    def fraction(value: int, unit: int) -> str:
        whole, rest = divmod(value, unit)
        digits = f"{rest:0{len(str(unit)) - 1}d}".rstrip("0") if rest else ""
        return f"{whole}.{digits}" if digits else str(whole)

    if nanos < 1_000:
        return f"{sign}{nanos}ns"
    if nanos < 1_000_000:
        return f"{sign}{fraction(nanos, 1_000)}\u00b5s"
    if nanos < 1_000_000_000:
        return f"{sign}{fraction(nanos, 1_000_000)}ms"
    hours, nanos = divmod(nanos, 3_600_000_000_000)
    minutes, nanos = divmod(nanos, 60_000_000_000)
    text = f"{fraction(nanos, 1_000_000_000)}s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text


_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def canonical_header_key(name: str) -> str:
    """Go's ``textproto.CanonicalMIMEHeaderKey`` (``x-ratelimit-remaining`` -> ``X-Ratelimit-Remaining``)."""
    if not name or any(char not in _TOKEN_CHARS for char in name):
        return name
    out, upper = [], True
    for char in name:
        out.append(char.upper() if upper else char.lower())
        upper = char == "-"
    return "".join(out)


# ---------------------------------------------------------------------------------------------------------------
# expr-lang runtime helpers (expr-lang vm/runtime, v1.17.8)
# ---------------------------------------------------------------------------------------------------------------


class _Panic(Exception):
    """A Go panic inside expr-lang's VM; vm.Run recovers it into an error (expr-lang vm/vm.go:54-70)."""


def _go_deep_equal(a: Any, b: Any) -> bool:
    # Go src/reflect/deepequal.go: identical types, then values; a nil map is not an empty map.
    if go_type_of(a) != go_type_of(b):
        return False
    if isinstance(a, TypedNil) or a is None:
        return isinstance(b, TypedNil) or b is None
    if isinstance(b, TypedNil):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_go_deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_go_deep_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, GoStruct):
        return all(_go_deep_equal(a.fields[k], b.fields[k]) for k in a.fields)
    if isinstance(a, (GoFunc, GoOpaque)):
        return False
    return bool(a == b)


def go_equal(a: Any, b: Any) -> bool:
    """expr-lang's ``==``: numbers across types, lists element-wise, nil == any typed nil, else DeepEqual."""
    # expr-lang vm/runtime/helpers[generated].go:11-700 (v1.17.8)
    if _is_number(a) and _is_number(b):
        if _is_integer(a) and _is_integer(b):
            return int(a) == int(b)
        return float(a) == float(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(go_equal(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is str and type(b) is str:
        return a == b
    if isinstance(a, bool) and isinstance(b, bool):
        return a == b
    # helpers[generated].go:696-699: "if IsNil(a) && IsNil(b) { return true }; return reflect.DeepEqual(a, b)"
    if is_nil(a) and is_nil(b):
        return True
    return _go_deep_equal(a, b)


def _go_compare(op: str, a: Any, b: Any) -> bool:
    # expr-lang vm/runtime/helpers[generated].go:702-2079 (v1.17.8): numbers or strings, else a panic.
    if _is_number(a) and _is_number(b):
        x, y = (int(a), int(b)) if _is_integer(a) and _is_integer(b) else (float(a), float(b))
    elif type(a) is str and type(b) is str:
        x, y = a, b
    else:
        raise _Panic(f"invalid operation: {go_type_of(a)} {op} {go_type_of(b)}")
    return {"<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op]


def _go_add(a: Any, b: Any) -> Any:
    # expr-lang vm/runtime/helpers[generated].go:2082-2426 (v1.17.8): integers of any kind add as Go int.
    if _is_number(a) and _is_number(b):
        if _is_integer(a) and _is_integer(b):
            total = int(a) + int(b)
            if not -(2**63) <= total < 2**63:
                raise ModelLimit("Go int overflow is not modelled")
            return total
        return float(a) + float(b)
    if type(a) is str and type(b) is str:
        return a + b
    raise _Panic(f"invalid operation: {go_type_of(a)} + {go_type_of(b)}")


def _go_subtract(a: Any, b: Any) -> Any:
    # expr-lang vm/runtime/helpers[generated].go:2429-2768 (v1.17.8): numbers only.
    if _is_number(a) and _is_number(b):
        if _is_integer(a) and _is_integer(b):
            return _go_add(int(a), -int(b))
        return float(a) - float(b)
    raise _Panic(f"invalid operation: {go_type_of(a)} - {go_type_of(b)}")


def _go_to_int(value: Any) -> int:
    # expr-lang vm/runtime/runtime.go:323-352 (v1.17.8)
    if _is_number(value):
        return int(value)
    raise _Panic(f"invalid operation: int({go_type_of(value)})")


_STATE_METHODS = frozenset({"Get", "Set", "ToJSON"})
_HEADER_METHODS = frozenset({"Add", "Clone", "Del", "Get", "Set", "Values", "Write", "WriteSubset"})


def _map_zero(container: Any) -> Any:
    if isinstance(container, GoStringMap) or container is NIL_STRING_MAP:
        return ""
    if isinstance(container, GoHeader):
        return NIL_STRINGS
    return None


def go_fetch(container: Any, key: Any) -> Any:
    """expr-lang's ``runtime.Fetch`` (``a.b`` / ``a[b]`` on a value of unknown static type)."""
    # expr-lang vm/runtime/runtime.go:21-102 (v1.17.8)
    if container is None:
        raise _Panic(f"cannot fetch {_go_v(key)} from <nil>")  # runtime.go:22-25
    if isinstance(container, GoOpaque):
        raise ModelLimit(f"the model does not represent {container.go_type}")
    # runtime.go:27-35: methods first, for any type that has some.
    if isinstance(container, GoState) and key in _STATE_METHODS:
        raise ModelLimit(f"outputs.{key} is promotion.State's method {key}, which the model does not represent")
    if isinstance(container, GoHeader) and key in _HEADER_METHODS:
        if key == "Get":
            return GoFunc("func(string) string", lambda name: _header_get(container, name), 1)
        if key == "Values":
            return GoFunc(
                "func(string) []string", lambda name: container.get(canonical_header_key(name), NIL_STRINGS), 1
            )
        raise ModelLimit(f"http.Header.{key} is not modelled")
    if isinstance(container, TypedNil):
        if container.kind == "map":
            if key is not None and not isinstance(key, str):
                raise _Panic(
                    f"reflect.Value.MapIndex: value of type {go_type_of(key)} is not assignable to type string"
                )
            return _map_zero(container)
        if container.kind == "slice":
            raise _Panic(f"index out of range: {_go_to_int(key)} (array length is 0)")
        raise _Panic(f"cannot fetch {_go_v(key)} from {container.go_type}")
    if isinstance(container, list):  # runtime.go:44-56
        index, length = _go_to_int(key), len(container)
        if index < 0:
            index += length
        if not 0 <= index < length:
            raise _Panic(f"index out of range: {index} (array length is {length})")
        return container[index]
    if isinstance(container, str):  # runtime.go:44-45: an index into the bytes of the string
        _go_to_int(key)
        raise ModelLimit("indexing a string (which gives a byte) is not modelled")
    if isinstance(container, dict):  # runtime.go:58-70: a missing key gives the element type's zero value
        if key is None:
            key = ""
        if not isinstance(key, str):
            raise _Panic(f"reflect.Value.MapIndex: value of type {go_type_of(key)} is not assignable to type string")
        return container[key] if key in container else _map_zero(container)
    if isinstance(container, GoStruct):  # runtime.go:72-100
        if not isinstance(key, str):
            raise _Panic(f"interface conversion: interface {{}} is {go_type_of(key)}, not string")
        if key in container.fields:
            return _touch(container.fields[key])
    raise _Panic(f"cannot fetch {_go_v(key)} from {go_type_of(container)}")


def _touch(value: Any) -> Any:
    if isinstance(value, GoOpaque):
        raise ModelLimit(f"the model does not represent {value.go_type}")
    return value


def go_fetch_field(container: Any, name: str) -> Any:
    """expr-lang's ``runtime.FetchField`` (a field of a statically known struct, e.g. ``imageFrom(...).Digest``)."""
    # expr-lang vm/runtime/runtime.go:109-126 (v1.17.8): reflect.Indirect of a nil pointer is the zero Value.
    if container is None:
        raise _Panic(f"cannot get {name} from <nil>")
    if isinstance(container, TypedNil):
        raise _Panic("reflect: call of reflect.Value.Field on zero Value")
    if not isinstance(container, GoStruct):
        raise _Panic(f"cannot get {name} from {go_type_of(container)}")
    return _touch(container.fields[name])


def go_in(needle: Any, haystack: Any) -> bool:
    """expr-lang's ``in``."""
    # expr-lang vm/runtime/runtime.go:209-264 (v1.17.8)
    if haystack is None:
        return False
    if isinstance(haystack, TypedNil):
        return False
    if isinstance(haystack, list):
        return any(go_equal(item, needle) for item in haystack)
    if isinstance(haystack, dict):
        key = "" if needle is None else needle
        if not isinstance(key, str):
            raise _Panic(f"reflect.Value.MapIndex: value of type {go_type_of(key)} is not assignable to type string")
        return key in haystack
    if isinstance(haystack, GoStruct):
        if not isinstance(needle, str):
            raise _Panic(f"cannot use {go_type_of(needle)} as field name of {go_type_of(haystack)}")
        return needle in haystack.fields
    raise _Panic(f'operator "in" not defined on {go_type_of(haystack)}')


def _header_get(header: GoHeader, name: Any) -> str:
    # Go src/net/http/header.go Get: case-insensitive, first value or "".
    if name is None:
        name = ""
    if not isinstance(name, str):
        raise _Panic(f"reflect: Call using {go_type_of(name)} as type string")
    values = header.get(canonical_header_key(name))
    return values[0] if values else ""


# ---------------------------------------------------------------------------------------------------------------
# expr-lang: lexer (parser/lexer/state.go, lexer.go, utils.go; v1.17.8)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # Identifier | Number | String | Operator | Bracket | EOF
    value: str
    pos: int

    def __str__(self) -> str:
        # expr-lang parser/lexer/token.go:27-32
        return self.kind if not self.value else f"{self.kind}({go_quote(self.value)})"

    def is_(self, kind: str, *values: str) -> bool:
        return self.kind == kind and (not values or self.value in values)


_KEYWORD_OPERATORS = frozenset({"not", "in", "or", "and", "matches", "contains", "startsWith", "endsWith", "let"})
_KEYWORD_OPERATORS |= {"if", "else"}


def _is_space(char: str) -> bool:
    # Go src/unicode/graphic.go IsSpace
    return char in "\t\n\v\f\r \x85\xa0" or (ord(char) > 0xFF and char.isspace())


def _is_alphabetic(char: str) -> bool:
    # expr-lang parser/utils/utils.go: '_', '$' or a Unicode letter
    return char in "_$" or char.isalpha()


def _is_alphanumeric(char: str) -> bool:
    return _is_alphabetic(char) or char.isdecimal()


class _Lexer:
    def __init__(self, source: str) -> None:
        self.src = source
        self.i = 0

    def error(self, message: str, position: int) -> ExprError:
        return ExprError(message, "compile", self.src, max(position, 0))

    def peek(self, offset: int = 0) -> str:
        index = self.i + offset
        return self.src[index] if index < len(self.src) else ""

    def tokens(self) -> list[_Token]:
        # expr-lang parser/lexer/state.go:11-70 (v1.17.8)
        out: list[_Token] = []
        src = self.src
        while True:
            if self.i >= len(src):
                out.append(_Token("EOF", "", max(len(src) - 1, 0)))
                return out
            start, char = self.i, src[self.i]
            if _is_space(char):
                self.i += 1
            elif char in "'\"":
                out.append(_Token("String", self.scan_string(char), start))
            elif char == "`":
                end = src.find("`", start + 1)
                while end >= 0 and src[end + 1 : end + 2] == "`":
                    end = src.find("`", end + 2)
                if end < 0:
                    raise self.error("literal not terminated", len(src))
                out.append(_Token("String", src[start + 1 : end].replace("``", "`"), start))
                self.i = end + 1
            elif char in "bB" and self.peek(1) in ("'", '"'):
                raise UnsupportedExprError("bytes literals are not modelled", "compile", src, start)
            elif "0" <= char <= "9":
                out.append(_Token("Number", self.scan_number(start), start))
            elif char == ".":
                if "0" <= self.peek(1) <= "9" and self.peek(1):
                    self.i += 1
                    out.append(_Token("Number", self.scan_number(start), start))
                else:
                    self.i += 2 if self.peek(1) == "." else 1
                    out.append(_Token("Operator", src[start : self.i], start))
            elif char == "?":  # state.go:184-188
                self.i += 2 if self.peek(1) in (".", "?") and self.peek(1) else 1
                out.append(_Token("Operator", src[start : self.i], start))
            elif char == "/":
                self.skip_comment_or_slash(out)
            elif char in "|:":
                self.i += 2 if self.peek(1) == char else 1
                out.append(_Token("Operator", src[start : self.i], start))
            elif char in "([{)]}":
                self.i += 1
                out.append(_Token("Bracket", char, start))
            elif char in ",;%+-^#":
                self.i += 1
                out.append(_Token("Operator", char, start))
            elif char in "&!=*<>":  # state.go:57-59: a possible second rune among "&=*"
                self.i += 2 if self.peek(1) in ("&", "=", "*") and self.peek(1) else 1
                out.append(_Token("Operator", src[start : self.i], start))
            elif _is_alphanumeric(char):  # state.go:129-155
                while self.i < len(src) and _is_alphanumeric(src[self.i]):
                    self.i += 1
                word = src[start : self.i]
                out.append(_Token("Operator" if word in _KEYWORD_OPERATORS else "Identifier", word, start))
            else:
                raise self.error(f"unrecognized character: U+{ord(char):04X} {go_quote(char)[1:-1]!r}", start)

    def skip_comment_or_slash(self, out: list[_Token]) -> None:
        start = self.i
        if self.peek(1) == "/":
            end = self.src.find("\n", start)
            self.i = len(self.src) if end < 0 else end + 1
        elif self.peek(1) == "*":
            end = self.src.find("*/", start + 2)
            if end < 0:
                raise self.error("unclosed comment", len(self.src))
            self.i = end + 2
        else:
            self.i += 1
            out.append(_Token("Operator", "/", start))

    def scan_number(self, start: int) -> str:
        # expr-lang parser/lexer/state.go:80-116 (v1.17.8)
        digits = "0123456789_"
        if self.peek() == "0" and self.src[start] != ".":
            self.i += 1
            prefix = self.peek().lower()
            if prefix and prefix in "xob":
                self.i += 1
                digits = {"x": "0123456789abcdefABCDEF_", "o": "01234567_", "b": "01_"}[prefix]
        while self.peek() and self.peek() in digits:
            self.i += 1
        if self.peek() == "." and self.src[start] != ".":
            if self.peek(1) == ".":
                return self.src[start : self.i]
            self.i += 1
            while self.peek() and self.peek() in digits:
                self.i += 1
        if self.peek() and self.peek() in "eE":
            self.i += 1
            if self.peek() and self.peek() in "+-":
                self.i += 1
            while self.peek() and self.peek() in digits:
                self.i += 1
        if self.peek() and _is_alphanumeric(self.peek()):
            self.i += 1
            raise self.error(f"bad number syntax: {go_quote(self.src[start : self.i])}", self.i - 1)
        return self.src[start : self.i]

    def scan_string(self, quote: str) -> str:
        # expr-lang parser/lexer/lexer.go:203-269 (scanEscape, scanString) then utils.go:15-252 (unescape):
        # a literal must pass both.
        src, start = self.src, self.i
        self.i += 1
        out: list[str] = []
        while True:
            if self.i >= len(src) or src[self.i] == "\n":
                raise self.error("literal not terminated", self.i)
            char = src[self.i]
            if char == quote:
                self.i += 1
                return "".join(out)
            if char != "\\":
                out.append(char)
                self.i += 1
                continue
            out.append(self.scan_escape(quote, start))

    def scan_escape(self, quote: str, start: int) -> str:
        src = self.src
        escape = src[self.i + 1 : self.i + 2]
        simple = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
        if escape in simple or escape == quote:
            self.i += 2
            return simple.get(escape, quote)
        if escape and escape in "01234567":
            octal = src[self.i + 1 : self.i + 4]
            if len(octal) < 3 or any(c not in "01234567" for c in octal):
                raise self.error("invalid char escape", self.i + 1)
            if escape not in "0123":
                raise self.error("unable to unescape octal sequence in string", start)
            self.i += 4
            return chr(int(octal, 8))
        if escape in ("x", "u", "U"):
            if escape == "u" and src[self.i + 2 : self.i + 3] == "{":
                end = src.find("}", self.i + 3)
                hex_digits = src[self.i + 3 : end] if end >= 0 else ""
                if (
                    end < 0
                    or not 1 <= len(hex_digits) <= 6
                    or not all(c in "0123456789abcdefABCDEF" for c in hex_digits)
                ):
                    raise self.error("invalid char escape", self.i + 1)
                self.i = end + 1
            else:
                width = {"x": 2, "u": 4, "U": 8}[escape]
                hex_digits = src[self.i + 2 : self.i + 2 + width]
                if len(hex_digits) < width or not all(c in "0123456789abcdefABCDEF" for c in hex_digits):
                    raise self.error("invalid char escape", self.i + 2)
                self.i += 2 + width
            code = int(hex_digits, 16)
            if code > 0x10FFFF:
                raise self.error("unable to unescape string", start)
            return "\ufffd" if 0xD800 <= code <= 0xDFFF else chr(code)
        raise self.error("invalid char escape", self.i + 1)


# ---------------------------------------------------------------------------------------------------------------
# expr-lang: syntax tree and parser (parser/parser.go, parser/operator/operator.go; v1.17.8)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Node:
    pos: int
    nature: Nature | None = field(default=None, init=False)


@dataclass(eq=False)
class _Literal(_Node):
    value: Any


@dataclass(eq=False)
class _Ident(_Node):
    name: str


@dataclass(eq=False)
class _Member(_Node):
    obj: _Node
    prop: _Node
    optional: bool = False
    method: bool = False
    static_field: bool = field(default=False, init=False)


@dataclass(eq=False)
class _Call(_Node):
    callee: _Node
    args: list[_Node]


@dataclass(eq=False)
class _Builtin(_Node):
    name: str
    args: list[_Node]


@dataclass(eq=False)
class _Unary(_Node):
    op: str
    operand: _Node


@dataclass(eq=False)
class _Binary(_Node):
    op: str
    left: _Node
    right: _Node


@dataclass(eq=False)
class _Cond(_Node):
    cond: _Node
    then: _Node
    otherwise: _Node


@dataclass(eq=False)
class _Chain(_Node):
    node: _Node


@dataclass(eq=False)
class _ArrayLit(_Node):
    items: list[_Node]


@dataclass(eq=False)
class _MapLit(_Node):
    pairs: list[tuple[_Node, _Node]]


# expr-lang parser/operator/operator.go (v1.17.8): precedence, and Right associativity for ** and ^.
_UNARY = {"not": 50, "!": 50, "-": 90, "+": 90}
_BINARY = {"|": 0, "or": 10, "||": 10, "and": 15, "&&": 15, "==": 20, "!=": 20, "<": 20, ">": 20, ">=": 20}
_BINARY |= {"<=": 20, "in": 20, "matches": 20, "contains": 20, "startsWith": 20, "endsWith": 20, "..": 25}
_BINARY |= {"+": 30, "-": 30, "*": 60, "/": 60, "%": 60, "**": 100, "^": 100, "??": 500}
_RIGHT_ASSOCIATIVE = frozenset({"**", "^"})
_COMPARISONS = frozenset({"<", ">", ">=", "<="})
_NEGATABLE = frozenset({"contains", "matches", "startsWith", "endsWith", "in"})
# expr-lang builtin/builtin.go (v1.17.8): calls to these names parse as builtins unless a function overrides them.
_PREDICATES = frozenset(
    {"all", "none", "any", "one", "filter", "map", "count", "sum", "find", "findIndex", "findLast"}
    | {"findLastIndex", "groupBy", "sortBy", "reduce"}
)
_BUILTINS = frozenset(
    {"len", "type", "abs", "ceil", "floor", "round", "int", "float", "string", "trim", "trimPrefix", "trimSuffix"}
    | {"upper", "lower", "split", "splitAfter", "replace", "repeat", "join", "indexOf", "lastIndexOf", "hasPrefix"}
    | {"hasSuffix", "max", "min", "mean", "median", "toJSON", "fromJSON", "toBase64", "fromBase64", "now"}
    | {"duration", "date", "timezone", "first", "last", "get", "take", "keys", "values", "toPairs", "fromPairs"}
    | {"reverse", "uniq", "concat", "flatten", "sort", "bitand", "bitor", "bitxor", "bitnand", "bitshl", "bitshr"}
    | {"bitushr", "bitnot"}
)


class _Parser:
    def __init__(self, source: str, functions: Mapping[str, ExprFunction]) -> None:
        self.src = source
        self.toks = _Lexer(source).tokens()
        self.i = 0
        self.functions = functions

    @property
    def cur(self) -> _Token:
        return self.toks[self.i]

    def advance(self) -> None:
        if self.cur.kind == "EOF":
            raise self.error("unexpected end of expression")  # parser.go:176-177
        self.i += 1

    def error(self, message: str, token: _Token | None = None) -> ExprError:
        return ExprError(message, "compile", self.src, (token or self.cur).pos)

    def unsupported(self, what: str, token: _Token | None = None) -> UnsupportedExprError:
        return UnsupportedExprError(f"{what} is not modelled", "compile", self.src, (token or self.cur).pos)

    def expect(self, kind: str, value: str) -> None:
        if not self.cur.is_(kind, value):
            raise self.error(f"unexpected token {self.cur}")
        self.advance()

    def parse(self) -> _Node:
        # parser.go:60-98, 199-218: a sequence "a; b" is not modelled.
        node = self.parse_expression(0)
        if self.cur.is_("Operator", ";") and self.toks[self.i + 1].kind == "EOF":
            self.advance()  # parser.go:204-207: a trailing semicolon is allowed
        if self.cur.is_("Operator", ";"):
            raise self.unsupported("a sequence of expressions (;)")
        if self.cur.kind != "EOF":
            raise self.error(f"unexpected token {self.cur}")
        return node

    def parse_expression(self, precedence: int) -> _Node:
        # parser.go:220-321 (v1.17.8)
        if precedence == 0 and self.cur.is_("Operator", "let", "if"):
            raise self.unsupported(f"'{self.cur.value}'")
        left = self.parse_primary()
        previous = ""
        while self.cur.kind == "Operator":
            token = self.cur
            negate = token.value == "not"
            if negate:  # parser.go:241-259: "not in", "not contains", ...
                following = self.toks[self.i + 1]
                if following.value not in _NEGATABLE:
                    raise self.error(f"unexpected token {following}", following)
                if _BINARY[following.value] < precedence:
                    break
                self.advance()
                token = self.cur
            op = token.value
            if op not in _BINARY or _BINARY[op] < precedence:
                break
            self.advance()
            if op == "|":
                raise self.unsupported("the pipe operator", token)
            if previous == "??" and op != "??":  # parser.go:271-274
                raise self.error(
                    f"Operator ({op}) and coalesce expressions (??) cannot be mixed. Wrap either by parentheses.", token
                )
            if op in _COMPARISONS:
                left = self.parse_comparison(left, token)
            else:
                right = self.parse_expression(_BINARY[op] if op in _RIGHT_ASSOCIATIVE else _BINARY[op] + 1)
                left = _Binary(token.pos, op, left, right)
                if negate:
                    left = _Unary(token.pos, "not", left)
            previous = op
        if precedence == 0:
            left = self.parse_conditional(left)
        return left

    def parse_comparison(self, left: _Node, token: _Token) -> _Node:
        # parser.go:907-940: a < b < c is (a < b) && (b < c).
        root: _Node | None = None
        while True:
            comparator = self.parse_expression(_BINARY[token.value] + 1)
            node = _Binary(token.pos, token.value, left, comparator)
            root = node if root is None else _Binary(token.pos, "&&", root, node)
            left, token = comparator, self.cur
            if not (token.kind == "Operator" and token.value in _COMPARISONS):
                return root
            self.advance()

    def parse_conditional(self, node: _Node) -> _Node:
        # parser.go:366-392: "c ? a : b" and "a ?: b".
        while self.cur.is_("Operator", "?"):
            token = self.cur
            self.advance()
            if not self.cur.is_("Operator", ":"):
                then = self.parse_expression(0)
                self.expect("Operator", ":")
                otherwise = self.parse_expression(0)
            else:
                self.advance()
                then, otherwise = node, self.parse_expression(0)
            node = _Cond(token.pos, node, then, otherwise)
        return node

    def parse_primary(self) -> _Node:
        # parser.go:394-445 (v1.17.8)
        token = self.cur
        if token.kind == "Operator" and token.value in _UNARY:
            self.advance()
            if token.value == "+":
                raise self.unsupported("unary +", token)
            operand = self.parse_expression(_UNARY[token.value])
            return self.parse_postfix(_Unary(token.pos, token.value, operand))
        if token.is_("Bracket", "("):
            self.advance()
            inner = self.parse_expression(0)
            if self.cur.is_("Operator", ";"):
                raise self.unsupported("a sequence of expressions (;)")
            self.expect("Bracket", ")")
            return self.parse_postfix(inner)
        if token.is_("Operator", "::", "#"):
            raise self.unsupported(f"'{token.value}'", token)
        return self.parse_secondary()

    def parse_secondary(self) -> _Node:
        # parser.go:447-551 (v1.17.8)
        token = self.cur
        if token.kind == "Identifier":
            self.advance()
            if token.value in ("true", "false", "nil"):
                return _Literal(token.pos, {"true": True, "false": False, "nil": None}[token.value])
            node: _Node = self.parse_call(token) if self.cur.is_("Bracket", "(") else _Ident(token.pos, token.value)
        elif token.kind == "Number":
            self.advance()
            return _Literal(token.pos, self.number(token))
        elif token.kind == "String":
            self.advance()
            node = _Literal(token.pos, token.value)
        elif token.is_("Bracket", "["):
            node = self.parse_array()
        elif token.is_("Bracket", "{"):
            node = self.parse_map()
        else:
            raise self.error(f"unexpected token {token}")
        return self.parse_postfix(node)

    def number(self, token: _Token) -> int | float:
        # parser.go:485-525 (v1.17.8): underscores dropped, then ParseInt (base prefixes) or ParseFloat.
        value = token.value.replace("_", "")
        lowered = value.lower()
        if "." in lowered or ("e" in lowered and not lowered.startswith("0x")):
            parsed = go_parse_float(value)
            if parsed is None:
                raise self.error(f"invalid float literal: strconv.ParseFloat: parsing {go_quote(value)}", token)
            return parsed
        kind, base, digits = {"0x": ("hex", 16, value[2:]), "0b": ("binary", 2, value[2:])}.get(
            lowered[:2], ("octal", 8, value[2:]) if lowered.startswith("0o") else ("integer", 10, value)
        )
        try:
            number = int(digits, base)
        except ValueError:
            raise self.error(f"invalid {kind} literal: strconv.ParseInt: parsing {go_quote(value)}", token) from None
        if number >= 2**63:
            raise self.error(f"invalid {kind} literal: strconv.ParseInt: parsing {go_quote(value)}", token)
        return number

    def parse_call(self, token: _Token) -> _Node:
        # parser.go:569-645: builtins and predicates unless a configured function of that name overrides them.
        overridden = token.value in self.functions
        if token.value in _PREDICATES and not overridden:
            raise self.unsupported(f"the builtin {token.value}()", token)
        args = self.parse_arguments()
        if token.value in _BUILTINS and not overridden:
            return _Builtin(token.pos, token.value, args)
        return _Call(token.pos, _Ident(token.pos, token.value), args)

    def parse_arguments(self) -> list[_Node]:
        # parser.go:647-666
        self.expect("Bracket", "(")
        args: list[_Node] = []
        while not self.cur.is_("Bracket", ")"):
            if args:
                self.expect("Operator", ",")
            if self.cur.is_("Bracket", ")"):
                break
            args.append(self.parse_expression(0))
        self.expect("Bracket", ")")
        return args

    def parse_array(self) -> _Node:
        # parser.go:700-722
        token = self.cur
        self.expect("Bracket", "[")
        items: list[_Node] = []
        while not self.cur.is_("Bracket", "]"):
            if items:
                self.expect("Operator", ",")
                if self.cur.is_("Bracket", "]"):
                    break
            items.append(self.parse_expression(0))
        self.expect("Bracket", "]")
        return _ArrayLit(token.pos, items)

    def parse_map(self) -> _Node:
        # parser.go:724-775: keys are quoted strings, numbers or identifiers (all as strings), or (expressions).
        token = self.cur
        self.expect("Bracket", "{")
        pairs: list[tuple[_Node, _Node]] = []
        while not self.cur.is_("Bracket", "}"):
            if pairs:
                self.expect("Operator", ",")
                if self.cur.is_("Bracket", "}"):
                    break
                if self.cur.is_("Operator", ","):
                    raise self.error(f"unexpected token {self.cur}")
            if self.cur.kind in ("Number", "String", "Identifier"):
                key: _Node = _Literal(self.cur.pos, self.cur.value)
                self.advance()
            elif self.cur.is_("Bracket", "("):
                key = self.parse_expression(0)
            else:
                raise self.error(
                    "a map key must be a quoted string, a number, a identifier, or an expression enclosed in "
                    f"parentheses (unexpected token {self.cur})"
                )
            self.expect("Operator", ":")
            pairs.append((key, self.parse_expression(0)))
        self.expect("Bracket", "}")
        return _MapLit(token.pos, pairs)

    def parse_postfix(self, node: _Node) -> _Node:
        # parser.go:777-906 (v1.17.8): ".name", "?.name", "[index]", "?.[index]", method calls, chains.
        while self.cur.kind in ("Operator", "Bracket"):
            token = self.cur
            optional = token.value == "?."
            if token.value in (".", "?.") and not (optional and self.toks[self.i + 1].is_("Bracket", "[")):
                self.advance()
                prop = self.cur
                self.advance()
                if prop.kind != "Identifier" and not (prop.kind == "Operator" and _valid_identifier(prop.value)):
                    raise self.error("expected name", prop)
                chained = isinstance(node, _Chain)
                base = node.node if isinstance(node, _Chain) else node
                member = _Member(prop.pos, base, _Literal(prop.pos, prop.value), optional)
                if self.cur.is_("Bracket", "("):
                    member.method = True
                    node = _Call(prop.pos, member, self.parse_arguments())
                else:
                    node = member
                if chained or optional:
                    node = _Chain(prop.pos, node)
            elif token.value == "[" or optional:
                if optional:
                    self.advance()
                self.advance()
                if self.cur.is_("Operator", ":"):
                    raise self.unsupported("slices ([a:b])")
                index = self.parse_expression(0)
                if self.cur.is_("Operator", ":"):
                    raise self.unsupported("slices ([a:b])")
                node = _Member(token.pos, node, index, optional)
                if optional:
                    node = _Chain(token.pos, node)
                self.expect("Bracket", "]")
            else:
                break
        return node


def _valid_identifier(text: str) -> bool:
    return bool(text) and _is_alphabetic(text[0]) and all(_is_alphanumeric(c) for c in text[1:])


# ---------------------------------------------------------------------------------------------------------------
# expr-lang: static checker (checker/checker.go, checker/nature; v1.17.8). Kargo compiles without expr.Env, so
# every variable has an unknown type; only literals and the declared types of Kargo's functions are known.
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Nature:
    """A static type as expr-lang's checker sees it (``kind`` "unknown" is expr-lang's ``Nature{}``/``any``)."""

    kind: str  # unknown nil bool int float string array map struct func any
    go: str = "unknown"
    elem: Nature | None = None
    fields: tuple[tuple[str, Nature], ...] = ()

    @property
    def unknown(self) -> bool:
        return self.kind in ("unknown", "any")

    @property
    def number(self) -> bool:
        return self.kind in ("int", "float")

    def assignable_to(self, other: Nature) -> bool:
        # checker/nature/nature.go:263-277
        if self.kind == "nil":
            return other.kind in ("map", "array", "func", "any") or other.go.startswith("*")
        if self.kind in ("unknown",) or other.kind == "unknown":
            return False
        return other.kind == "any" or self.go == other.go

    def comparable_to(self, other: Nature) -> bool:
        # checker/nature/nature.go:557-565
        return (
            self.unknown
            or other.unknown
            or "nil" in (self.kind, other.kind)
            or (self.number and other.number)
            or (self.kind == "array" and other.kind == "array")
            or self.assignable_to(other)
        )

    def maybe(self, other: Nature, *kinds: str) -> bool:
        # checker/nature/nature.go:567-573 (MaybeCompatible)
        return (
            (self.unknown and other.unknown)
            or (self.unknown and other.kind in kinds)
            or (other.unknown and self.kind in kinds)
        )


N_UNKNOWN = Nature("unknown")
N_ANY = Nature("any", "interface {}")
N_NIL = Nature("nil")
N_BOOL = Nature("bool", "bool")
N_INT = Nature("int", "int")
N_FLOAT = Nature("float", "float64")
N_STRING = Nature("string", "string")
N_ARRAY = Nature("array", "[]interface {}", N_ANY)
N_MAP = Nature("map", "map[string]interface {}", N_ANY)
N_STRING_MAP = Nature("map", "map[string]string", N_STRING)
N_IMAGE = Nature(
    "struct",
    "v1alpha1.Image",
    fields=(("RepoURL", N_STRING), ("Tag", N_STRING), ("Digest", N_STRING), ("Annotations", N_STRING_MAP)),
)
N_ORIGIN = Nature("struct", "v1alpha1.FreightOrigin", fields=(("Name", N_STRING),))


@dataclass(frozen=True)
class Signature:
    """One declared Go type of a function given to expr.Function: parameter natures and result."""

    params: tuple[Nature, ...]
    result: Nature


@dataclass(frozen=True)
class ExprFunction:
    """A function given to expr-lang with ``expr.Function(name, fn, types...)``; no ``signatures``: untyped."""

    name: str
    impl: Callable[..., Any]
    signatures: tuple[Signature, ...] | None = None
    unsupported: bool = False


class _Checker:
    def __init__(self, source: str, functions: Mapping[str, ExprFunction]) -> None:
        self.src = source
        self.functions = functions

    def error(self, message: str, node: _Node) -> ExprError:
        return ExprError(message, "compile", self.src, node.pos)

    def visit(self, node: _Node) -> Nature:
        nature = self._visit(node)
        node.nature = nature
        return nature

    def _visit(self, node: _Node) -> Nature:
        if isinstance(node, _Literal):
            value = node.value
            if value is None:
                return N_NIL
            if isinstance(value, bool):
                return N_BOOL
            return N_INT if isinstance(value, int) else N_FLOAT if isinstance(value, float) else N_STRING
        if isinstance(node, _Ident):
            # checker.go:249-289: without expr.Env (Kargo passes none) a name is never an error, just unknown.
            if node.name == "$env":
                raise UnsupportedExprError("$env is not modelled", "compile", self.src, node.pos)
            fn = self.functions.get(node.name)
            return Nature("func", f"func {node.name}") if fn is not None else N_UNKNOWN
        if isinstance(node, _Builtin):
            raise UnsupportedExprError(f"the builtin {node.name}() is not modelled", "compile", self.src, node.pos)
        if isinstance(node, _Chain):
            return self.visit(node.node)
        if isinstance(node, _ArrayLit):
            for item in node.items:
                self.visit(item)
            return N_ARRAY
        if isinstance(node, _MapLit):
            for key, value in node.pairs:
                self.visit(key)
                self.visit(value)
            return N_MAP
        if isinstance(node, _Unary):
            return self.unary(node)
        if isinstance(node, _Binary):
            return self.binary(node)
        if isinstance(node, _Cond):
            return self.conditional(node)
        if isinstance(node, _Member):
            return self.member(node)
        if isinstance(node, _Call):
            return self.call(node)
        raise ModelLimit(f"unknown node {node!r}")

    def unary(self, node: _Unary) -> Nature:
        # checker.go:291-318 (v1.17.8)
        nature = self.visit(node.operand)
        if node.op in ("!", "not") and (nature.kind == "bool" or nature.unknown):
            return N_BOOL
        if node.op == "-" and (nature.number or nature.unknown):
            return nature if nature.number else N_UNKNOWN
        raise self.error(f"invalid operation: {node.op} (mismatched type {nature.go})", node)

    def binary(self, node: _Binary) -> Nature:
        # checker.go:320-509 (v1.17.8)
        left, right, op = self.visit(node.left), self.visit(node.right), node.op
        if op in ("==", "!="):
            if left.comparable_to(right):
                return N_BOOL
        elif op in ("||", "&&", "or", "and"):
            if (left.kind == "bool" and right.kind == "bool") or left.maybe(right, "bool"):
                return N_BOOL
        elif op in _COMPARISONS:
            same = (left.number and right.number) or (left.kind == right.kind == "string")
            if same or left.maybe(right, "int", "float", "string"):
                return N_BOOL
        elif op in ("+", "-"):
            if left.number and right.number:
                return N_FLOAT if "float" in (left.kind, right.kind) else N_INT
            if op == "+" and left.kind == right.kind == "string":
                return N_STRING
            if left.maybe(right, "int", "float", *(("string",) if op == "+" else ())):
                return N_UNKNOWN
        elif op == "in":
            if (left.kind == "string" or left.unknown) and right.kind == "struct":
                return N_BOOL
            if right.kind == "map":
                if not left.unknown and not left.assignable_to(N_STRING):
                    raise self.error(f"cannot use {left.go} as type string in map key", node)
                return N_BOOL
            if right.kind == "array":
                if not left.comparable_to(right.elem or N_ANY):
                    raise self.error(f"cannot use {left.go} as type {(right.elem or N_ANY).go} in array", node)
                return N_BOOL
            if (left.unknown and right.kind in ("string", "array", "map")) or right.unknown:
                return N_BOOL
        elif op == "??":
            if left.kind == "nil":
                return right
            if right.kind == "nil":
                return left
            return left if right.assignable_to(left) else N_UNKNOWN
        else:
            raise UnsupportedExprError(f"the operator {op} is not modelled", "compile", self.src, node.pos)
        raise self.error(f"invalid operation: {op} (mismatched types {left.go} and {right.go})", node)

    def conditional(self, node: _Cond) -> Nature:
        # checker.go:1283-1313 (v1.17.8)
        cond = self.visit(node.cond)
        if cond.kind != "bool" and not cond.unknown:
            raise self.error(f"non-bool expression (type {cond.go}) used as condition", node.cond)
        then, otherwise = self.visit(node.then), self.visit(node.otherwise)
        if then.kind == "nil":
            return otherwise
        if otherwise.kind == "nil":
            return then
        return then if then.assignable_to(otherwise) else N_UNKNOWN

    def member(self, node: _Member) -> Nature:
        # checker.go:515-603 (v1.17.8)
        base, prop = self.visit(node.obj), self.visit(node.prop)
        name = node.prop.value if isinstance(node.prop, _Literal) and isinstance(node.prop.value, str) else None
        if base.unknown:
            return N_UNKNOWN
        if name is not None and base.kind == "nil":
            raise self.error(f"type nil has no field {name}", node)
        if base.kind == "map":
            if not prop.unknown and not prop.assignable_to(N_STRING):
                raise self.error(f"cannot use {prop.go} to get an element from {base.go}", node.prop)
            return base.elem or N_ANY
        if base.kind == "array":
            if prop.kind != "int" and not prop.unknown:
                raise self.error(f"array elements can only be selected using an integer (got {prop.go})", node.prop)
            return base.elem or N_ANY
        if base.kind == "struct" and name is not None:
            for field_name, nature in base.fields:
                if field_name == name:
                    node.static_field = True  # compiler.go:696-703: OpFetchField, not OpFetch
                    return nature
            if base is N_ORIGIN and name == "Kind":
                raise UnsupportedExprError("FreightOrigin.Kind is not modelled", "compile", self.src, node.pos)
        if name is not None:
            what = "method" if node.method else "field"
            raise self.error(f"type {base.go} has no {what} {name}", node)
        raise self.error(f"type {base.go}[{prop.go}] is undefined", node)

    def call(self, node: _Call) -> Nature:
        # checker.go:638-693 and 996-1173 (v1.17.8)
        if isinstance(node.callee, _Ident) and node.callee.name in self.functions:
            fn = self.functions[node.callee.name]
            node.callee.nature = Nature("func", f"func {fn.name}")
            args = [self.visit(arg) for arg in node.args]
            if fn.unsupported:
                raise UnsupportedExprError(f"the function {fn.name}() is not modelled", "compile", self.src, node.pos)
            if fn.signatures is None:
                return N_UNKNOWN
            last_error: ExprError | None = None
            for signature in fn.signatures:
                problem = self.check_arguments(fn.name, signature, node, args)
                if problem is None:
                    return signature.result
                last_error = problem
            assert last_error is not None
            raise last_error
        callee = self.visit(node.callee)
        for arg in node.args:
            self.visit(arg)
        if callee.unknown:
            return N_UNKNOWN
        if callee.kind == "nil":
            raise self.error("nil is nil; cannot call nil as function", node)
        if callee.kind == "func":
            return N_UNKNOWN
        raise self.error(f"{callee.go} is not callable", node)

    def check_arguments(self, name: str, signature: Signature, node: _Call, args: list[Nature]) -> ExprError | None:
        if len(args) > len(signature.params):
            return self.error(f"too many arguments to call {name}", node)
        if len(args) < len(signature.params):
            return self.error(f"not enough arguments to call {name}", node)
        for arg_node, arg, param in zip(node.args, args, signature.params, strict=True):
            if arg.kind == "nil":
                if param.kind != "any":
                    return self.error(f"cannot use nil as argument (type {param.go}) to call {name}", arg_node)
                continue
            if not arg.unknown and not arg.assignable_to(param):
                return self.error(f"cannot use {arg.go} as argument (type {param.go}) to call {name} ", arg_node)
        return None


# ---------------------------------------------------------------------------------------------------------------
# expr-lang: evaluation (compiler/compiler.go + vm/vm.go semantics; v1.17.8)
# ---------------------------------------------------------------------------------------------------------------


class _ChainNil(Exception):
    """An optional member (``?.``) met nil: the whole chain is nil (compiler.go:660-680, vm.go:209-215)."""


class _FunctionError(Exception):
    """An error returned by a function given to expr-lang; the VM panics with it (vm.go:445-453)."""


@dataclass(frozen=True)
class CompiledExpr:
    """A parsed and checked expression; :meth:`run` evaluates it against an environment map."""

    source: str
    root: _Node
    functions: Mapping[str, ExprFunction]

    def run(self, env: Mapping[str, Any]) -> Any:
        """expr.Run: a value, or an :class:`ExprError` (phase "run") for what the VM would panic on."""
        runner = _Runner(self.source, env, self.functions)
        try:
            return runner.eval(self.root)
        except _Panic as panic:
            raise ExprError(str(panic), "run", self.source, runner.position) from None
        except _FunctionError as error:
            raise ExprError(str(error), "run", self.source, runner.position) from None


def evaluate_expr(source: str, env: Mapping[str, Any], functions: Mapping[str, Any] | None = None) -> Any:
    """Compile and run one expr-lang expression (no template, no coercion)."""
    return compile_expr(source, _function_table(functions)).run(env)


def compile_expr(source: str, functions: Mapping[str, ExprFunction] | None = None) -> CompiledExpr:
    """expr.Compile without ``expr.Env`` (as Kargo calls it): parse, then type-check what is statically known."""
    # expr-lang expr.go:229-261 (v1.17.8)
    table = dict(functions or {})
    root = _Parser(source, table).parse()
    _Checker(source, table).visit(root)
    return CompiledExpr(source, root, table)


class _Runner:
    def __init__(self, source: str, env: Mapping[str, Any], functions: Mapping[str, ExprFunction]) -> None:
        self.src = source
        self.env = env
        self.functions = functions
        self.position: int | None = None

    def eval(self, node: _Node) -> Any:
        self.position = node.pos
        if isinstance(node, _Literal):
            return node.value
        if isinstance(node, _Ident):
            # compiler.go:300-330 + vm.go:124-125: OpLoadConst, runtime.Fetch(env, name): a missing name is nil.
            return go_fetch(self.env, node.name) if isinstance(self.env, Mapping) else None
        if isinstance(node, _Chain):
            try:
                result = self.eval(node.node)
            except _ChainNil:
                return None
            return None if is_nil(result) else result  # compiler.go:671-678: a typed nil becomes nil
        if isinstance(node, _ArrayLit):
            return [self.eval(item) for item in node.items]
        if isinstance(node, _MapLit):
            result: dict[str, Any] = {}
            for key_node, value_node in node.pairs:
                key, value = self.eval(key_node), self.eval(value_node)
                if not isinstance(key, str):  # vm.go:487-496: m[key.(string)]
                    raise _Panic(f"interface conversion: interface {{}} is {go_type_of(key)}, not string")
                result[key] = value
            return result
        if isinstance(node, _Unary):
            return self.unary(node)
        if isinstance(node, _Binary):
            return self.binary(node)
        if isinstance(node, _Cond):
            # compiler.go:1276-1290: OpJumpIfFalse asserts a bool.
            return self.eval(node.then if self.as_bool(self.eval(node.cond)) else node.otherwise)
        if isinstance(node, _Member):
            base = self.eval(node.obj)
            if node.optional and is_nil(base):
                raise _ChainNil
            key = self.eval(node.prop)
            self.position = node.pos
            return go_fetch_field(base, key) if node.static_field else go_fetch(base, key)
        if isinstance(node, _Call):
            return self.call(node)
        raise ModelLimit(f"unknown node {node!r}")

    @staticmethod
    def as_bool(value: Any) -> bool:
        # vm.go:168-207: OpNot / OpJumpIfTrue / OpJumpIfFalse do value.(bool).
        if isinstance(value, bool):
            return value
        shown = "nil" if value is None else go_type_of(value)
        raise _Panic(f"interface conversion: interface {{}} is {shown}, not bool")

    def unary(self, node: _Unary) -> Any:
        value = self.eval(node.operand)
        if node.op in ("!", "not"):
            return not self.as_bool(value)
        # vm/runtime/runtime.go:276-305 (Negate)
        if isinstance(value, bool) or not _is_number(value):
            raise _Panic(f"invalid operation: - {go_type_of(value)}")
        return type(value)(-value) if _is_integer(value) else -value

    def binary(self, node: _Binary) -> Any:
        op = node.op
        if op in ("&&", "and", "||", "or"):
            # compiler.go:456-488: short-circuit; the left operand must be a bool, the right is returned as is.
            left = self.as_bool(self.eval(node.left))
            if (op in ("&&", "and")) != left:
                return left
            return self.eval(node.right)
        if op == "??":
            # compiler.go:612-619: OpJumpIfNotNil uses IsNil, so a typed nil is replaced too.
            left = self.eval(node.left)
            return self.eval(node.right) if is_nil(left) else left
        left, right = self.eval(node.left), self.eval(node.right)
        self.position = node.pos
        if op in ("==", "!="):
            return go_equal(left, right) == (op == "==")
        if op in _COMPARISONS:
            return _go_compare(op, left, right)
        if op == "+":
            return _go_add(left, right)
        if op == "-":
            return _go_subtract(left, right)
        if op == "in":
            return go_in(left, right)
        raise ModelLimit(f"operator {op} is not modelled")

    def call(self, node: _Call) -> Any:
        callee = node.callee
        if isinstance(callee, _Ident) and callee.name in self.functions:
            fn = self.functions[callee.name]
            args = [self.eval(arg) for arg in node.args]
            self.position = node.pos
            try:
                return fn.impl(*args)
            except ModelLimit:
                raise
            except KargoError as error:
                raise _FunctionError(str(error)) from None
        target = self.eval(callee)
        args = [self.eval(arg) for arg in node.args]
        self.position = node.pos
        # vm.go:368-408 (OpCall)
        if target is None:
            raise _Panic("invalid operation: cannot call nil")
        if not isinstance(target, GoFunc):
            raise _Panic(f"invalid operation: cannot call non-function of type {go_type_of(target)}")
        if len(args) != target.num_in:
            raise _Panic(f"invalid number of arguments: expected {target.num_in}, got {len(args)}")
        return target.fn(*args)


# ---------------------------------------------------------------------------------------------------------------
# Kargo templates (pkg/expressions/json_templates.go, v1.11.2)
# ---------------------------------------------------------------------------------------------------------------

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
        return f'"{_go_json_indent(value)}\n"'
    except TemplateError as error:
        raise TemplateError(f"error applying asJSON() function: {error}") from None


_ANY_TO_STRING = (Signature((N_ANY,), N_STRING),)
# json_templates.go:135-157: added to every EvaluateTemplate call, as func(any) string.
TEMPLATE_FUNCTIONS: dict[str, ExprFunction] = {
    "quote": ExprFunction("quote", _quote, _ANY_TO_STRING),
    "unsafeQuote": ExprFunction("unsafeQuote", _unsafe_quote, _ANY_TO_STRING),
    "asJSON": ExprFunction("asJSON", _as_json, _ANY_TO_STRING),
    "asYAML": ExprFunction("asYAML", lambda value: value, _ANY_TO_STRING, unsupported=True),
}


def _function_table(functions: Mapping[str, Any] | None) -> dict[str, ExprFunction]:
    table: dict[str, ExprFunction] = {}
    for name, fn in (functions or {}).items():
        table[name] = fn if isinstance(fn, ExprFunction) else ExprFunction(name, fn)
    return table


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
    table = {**_function_table(functions), **TEMPLATE_FUNCTIONS}
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


def _evaluate_collection(value: Any, env: Mapping[str, Any], table: Mapping[str, ExprFunction]) -> Any:
    # json_templates.go:71-111: every string value, at any depth; keys are never evaluated.
    if isinstance(value, dict):
        return {key: _evaluate_collection(item, env, table) for key, item in value.items()}
    if isinstance(value, list):
        return [_evaluate_collection(item, env, table) for item in value]
    if isinstance(value, str):
        return evaluate_template(value, env, table)
    return value


_YAML_INT = re.compile(r"-?[0-9]+")


def _yaml_v3_numbers(value: Any) -> Any:
    # pkg/promotion/evaluator.go:316-319 (v1.11.2): the evaluated JSON is read back with go.yaml.in/yaml/v3,
    # which makes integer-looking numbers Go ints ("5") and the rest float64 ("1.5", "1e+21").
    if isinstance(value, float) and not isinstance(value, bool):
        text = _go_json_float(value)
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
    table = {**_function_table(functions), **TEMPLATE_FUNCTIONS}
    evaluated = _evaluate_collection(_go_json_input(config), env, table)
    go_json_marshal(evaluated)  # json_templates.go:64: NaN or +Inf from a coerced "NaN"/"inf" fail here
    return _yaml_v3_numbers(evaluated)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, str):
        return "string"
    return "number" if _is_number(value) else "null"


# ---------------------------------------------------------------------------------------------------------------
# Kargo's expression functions (pkg/expressions/function/functions.go, v1.11.2)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    """One image of a Freight (``api/v1alpha1/stage_types.go:670-681``)."""

    repo_url: str
    tag: str = ""
    digest: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, value: Image | Mapping[str, Any]) -> Image:
        if isinstance(value, Image):
            return value
        return cls(
            value["repoURL"], value.get("tag", ""), value.get("digest", ""), dict(value.get("annotations") or {})
        )

    def go_value(self) -> GoStruct:
        annotations = GoStringMap(self.annotations) if self.annotations else NIL_STRING_MAP
        fields = {"RepoURL": self.repo_url, "Tag": self.tag, "Digest": self.digest, "Annotations": annotations}
        tags = (("RepoURL", "repoURL"), ("Tag", "tag"), ("Digest", "digest"), ("Annotations", "annotations"))
        return GoStruct("v1alpha1.Image", fields, tags, pointer=True)


@dataclass(frozen=True)
class Freight:
    """A Freight: its name, its images and the Warehouse it came from (``origin``)."""

    name: str
    images: Sequence[Image | Mapping[str, Any]] = ()
    origin: str | None = None
    alias: str = ""

    @classmethod
    def of(cls, value: Freight | Mapping[str, Any]) -> Freight:
        if isinstance(value, Freight):
            return value
        return cls(value["name"], tuple(value.get("images") or ()), value.get("origin"), value.get("alias", ""))


def _origin_struct(name: str) -> GoStruct:
    fields = {"Kind": GoNamedString("Warehouse", "v1alpha1.FreightOriginKind"), "Name": name}
    return GoStruct("v1alpha1.FreightOrigin", fields, (("Kind", "kind"), ("Name", "name")))


def _arg_string(args: Sequence[Any], what: str = "argument") -> str:
    if not isinstance(args[0], str) or isinstance(args[0], GoNamedString):
        raise KargoError(f"{what} must be string, got {go_type_of(args[0])}")
    return args[0]


@dataclass(frozen=True)
class _FreightContext:
    project: str
    requested: tuple[str, ...]  # Warehouse names of spec.requestedFreight
    references: tuple[Freight, ...]  # the FreightCollection's references
    warehouses: Mapping[str, Sequence[str]]

    def find_image(self, repo_url: str, origin: str | None) -> Any:
        # pkg/controller/freight/finder.go:97-165 (v1.11.2): the requested Warehouse that subscribes to the
        # repoURL (exact string match) is the origin; none -> nil; two -> an error; then the Freight from it.
        if origin is None:
            for warehouse in self.requested:
                if warehouse not in self.warehouses:
                    raise KargoError(f"Warehouse {go_quote(warehouse)} not found in namespace {go_quote(self.project)}")
                if repo_url in self.warehouses[warehouse]:
                    if origin is not None:
                        raise KargoError(
                            "multiple requested Freight could potentially provide a container image from "
                            f"repository {repo_url}: please provide a Freight origin to disambiguate"
                        )
                    origin = warehouse
        if origin is None:
            return NIL_IMAGE
        for freight in self.references:
            if freight.origin == origin:
                for image in map(Image.of, freight.images):
                    if image.repo_url == repo_url:
                        return image.go_value()
        return NIL_IMAGE


def _freight_functions(freight: _FreightContext) -> dict[str, ExprFunction]:
    def image_from(*args: Any) -> Any:
        # functions.go:640-676 (v1.11.2)
        if not 1 <= len(args) <= 2:
            raise KargoError(f"expected 1-2 arguments, got {len(args)}")
        repo_url = _arg_string(args, "first argument")
        origin = None
        if len(args) == 2:
            if not (isinstance(args[1], GoStruct) and args[1].go_type == "v1alpha1.FreightOrigin"):
                raise KargoError(f"second argument must be FreightOrigin, got {go_type_of(args[1])}")
            origin = args[1].fields["Name"]
        return freight.find_image(repo_url, origin)

    def warehouse(*args: Any) -> GoStruct:
        # functions.go:543-561 (v1.11.2)
        if len(args) != 1:
            raise KargoError(f"expected 1 argument, got {len(args)}")
        name = _arg_string(args)
        if not name:
            raise KargoError("name must not be empty")
        return _origin_struct(name)

    untyped = ("commitFrom", "chartFrom", "artifactFrom", "freightMetadata")
    return {
        # functions.go:133-135, 178-191: declared Go types, checked at compile time.
        "warehouse": ExprFunction("warehouse", warehouse, (Signature((N_STRING,), N_ORIGIN),)),
        "imageFrom": ExprFunction(
            "imageFrom",
            image_from,
            (Signature((N_STRING, N_ORIGIN), N_IMAGE), Signature((N_STRING,), N_IMAGE)),
        ),
        **{name: ExprFunction(name, image_from, unsupported=True) for name in untyped},
    }


def _data_functions(secrets: Mapping[str, Mapping[str, str]], config_maps: Mapping[str, Mapping[str, str]]) -> dict:
    def lookup(store: Mapping[str, Mapping[str, str]]) -> Callable[..., GoStringMap]:
        def get(*args: Any) -> GoStringMap:
            # functions.go:999-1057 (v1.11.2): a missing Secret (or ConfigMap) is an empty map, not an error.
            if len(args) != 1:
                raise KargoError(f"expected 1 argument, got {len(args)}")
            return GoStringMap(store.get(_arg_string(args), {}))

        return get

    typed = (Signature((N_STRING,), N_STRING_MAP),)
    untyped = ("sharedSecret", "sharedConfigMap", "stageMetadata", "semverDiff", "semverParse")
    return {
        "secret": ExprFunction("secret", lookup(secrets), typed),  # functions.go:446-452
        "configMap": ExprFunction("configMap", lookup(config_maps), typed),  # functions.go:436-442
        **{name: ExprFunction(name, lambda *a: None, unsupported=True) for name in untyped},
    }


def _status_functions(metas: Sequence[_Meta]) -> dict[str, ExprFunction]:
    def has_failures() -> bool:
        # api/v1alpha1/promotion_types.go:427-439 (v1.11.2)
        return any(m.status in ("Errored", "Failed") for m in metas if not m.continue_on_error)

    def status(*args: Any) -> str:
        # functions.go:1072-1107 (v1.11.2)
        if len(args) != 1:
            raise KargoError(f"expected 1 argument, got {len(args)}")
        alias = _arg_string(args)
        if not alias:
            raise KargoError("argument must not be empty")
        return next((m.status for m in metas if m.alias == alias), "")

    no_args = (Signature((), N_BOOL),)
    return {  # functions.go:488-537 (v1.11.2)
        "always": ExprFunction("always", lambda: True, no_args),
        "failure": ExprFunction("failure", has_failures, no_args),
        "success": ExprFunction("success", lambda: not has_failures(), no_args),
        "status": ExprFunction("status", status, (Signature((N_STRING,), N_STRING),)),
    }


def make_functions(
    *,
    stage: Mapping[str, Any],
    freight: Freight | Mapping[str, Any],
    warehouses: Mapping[str, Sequence[str]],
    secrets: Mapping[str, Mapping[str, str]] | None = None,
    config_maps: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, ExprFunction]:
    """The functions a Stage's step configs see, without the status ones: imageFrom, warehouse, secret, ..."""
    context = _freight_context(stage, [_with_origin(Freight.of(freight), stage)], warehouses)
    return {**_freight_functions(context), **_data_functions(secrets or {}, config_maps or {})}


def _requested(stage: Mapping[str, Any]) -> tuple[str, ...]:
    requested = (stage.get("spec") or {}).get("requestedFreight") or []
    return tuple(item["origin"]["name"] for item in requested)


def _with_origin(freight: Freight, stage: Mapping[str, Any]) -> Freight:
    if freight.origin is not None:
        return freight
    requested = _requested(stage)
    if len(requested) != 1:
        raise ValueError(f"Freight {freight.name!r} needs an origin: the Stage requests {len(requested)} origins")
    return Freight(freight.name, freight.images, requested[0], freight.alias)


def _freight_context(
    stage: Mapping[str, Any], references: Sequence[Freight], warehouses: Mapping[str, Sequence[str]]
) -> _FreightContext:
    project = stage.get("metadata", {}).get("namespace", "")
    return _FreightContext(project, _requested(stage), tuple(references), warehouses)


# ---------------------------------------------------------------------------------------------------------------
# HTTP as the http step sees it
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class HttpRequest:
    """One request the http step sent: Go's request after ``buildRequest`` (headers canonical, query encoded)."""

    method: str
    url: str
    headers: list[tuple[str, str]]
    body: str
    timeout: float  # seconds (the step's ``timeout``, 10s by default)
    step: str = ""
    at: float = 0.0  # simulated clock, seconds
    insecure_skip_tls_verify: bool = False
    proxy: str = ""

    def header(self, name: str) -> str | None:
        """The first value of a header, case-insensitively."""
        key = canonical_header_key(name)
        return next((value for k, value in self.headers if k == key), None)

    def json(self) -> Any:
        """The body parsed as JSON (Python's ints and floats)."""
        return json.loads(self.body)


@dataclass
class HttpResponse:
    """What the server answered; ``content_type`` is a shortcut for a Content-Type header."""

    status: int
    headers: Mapping[str, str | Sequence[str]] | Sequence[tuple[str, str]] = ()
    body: bytes | str = b""
    content_type: str | None = None

    def go_header(self) -> GoHeader:
        pairs: list[tuple[str, str]] = []
        items = self.headers.items() if isinstance(self.headers, Mapping) else self.headers
        for name, value in items:
            values = [value] if isinstance(value, str) else list(value)
            pairs.extend((name, v) for v in values)
        if self.content_type is not None and not any(canonical_header_key(k) == "Content-Type" for k, _ in pairs):
            pairs.append(("Content-Type", self.content_type))
        header = GoHeader()
        for name, value in pairs:
            header.setdefault(canonical_header_key(name), GoStrings()).append(value)
        return header


HttpHandler = Callable[[HttpRequest], HttpResponse]

# pkg/promotion/runner/builtin/http_requester.go:28-46 (v1.11.2)
_MAX_RESPONSE_BYTES = 2 << 20
_REQUEST_TIMEOUT_DEFAULT = 10.0
_HTTP_POLL_INTERVAL_DEFAULT = 30.0


def _media_type(header_value: str) -> str:
    # Go src/mime/mediatype.go ParseMediaType: the lower-cased "type/subtype", "" when malformed.
    base = header_value.split(";", 1)[0].strip().lower()
    kind, slash, subtype = base.partition("/")
    valid = bool(kind) and all(c in _TOKEN_CHARS for c in kind)
    if slash:
        valid = valid and bool(subtype) and all(c in _TOKEN_CHARS for c in subtype)
    return base if valid else ""


def _response_env(response: HttpResponse, content_type: str) -> dict[str, Any]:
    # http_requester.go:358-433 (v1.11.2)
    header = response.go_header()
    body = response.body.encode("utf-8") if isinstance(response.body, str) else bytes(response.body)
    length = header.get("Content-Length")
    if length and length[0].isdigit() and int(length[0]) > _MAX_RESPONSE_BYTES:
        raise KargoError(f"response body size {length[0]} exceeds limit of {_MAX_RESPONSE_BYTES} bytes")
    if len(body) > _MAX_RESPONSE_BYTES:
        raise KargoError(f"reading response body: content exceeds limit of {_MAX_RESPONSE_BYTES} bytes")
    result: dict[str, Any] = {
        "status": GoInt64(response.status),  # int64, http_requester.go:387-390
        "header": GoFunc("func(string) string", lambda name: _header_get(header, name), 1),
        "headers": header,
        "body": {},  # an empty body stays an empty map
    }
    if not content_type:
        content_type = _media_type(_header_get(header, "Content-Type"))
    if body:
        lowered = content_type.lower()  # http_requester.go:465-479: EqualFold
        if lowered in ("application/yaml", "text/yaml", "application/x-yaml"):
            raise ModelLimit("YAML response bodies are not modelled")
        if lowered == "text/plain":
            result["body"] = body.decode("utf-8", "replace")
        else:  # JSON, and the fallback for any other content type
            ok, parsed = go_json_unmarshal(body)
            if ok:
                result["body"] = parsed
            elif content_type == "application/json":
                raise KargoError("failed to parse JSON response: invalid JSON")
            # any other content type with a body that is not JSON: the body is ignored (stays {})
    return {"response": result}


# ---------------------------------------------------------------------------------------------------------------
# Promotion: steps, metadata, the orchestrator loop and the reconciler around it
# ---------------------------------------------------------------------------------------------------------------

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
_DEFAULT_ERROR_THRESHOLD = 1  # pkg/promotion/registry.go:29-34 (v1.11.2)
_RESERVED_ALIAS = re.compile(r"^(step|task)-\d+$")  # pkg/promotion/local_engine.go:18 (v1.11.2)
_SEVERITY = {"Succeeded": 0, "Skipped": 1, "Running": 2, "Aborted": 3, "Failed": 4, "Errored": 5}
NOT_EVALUATED = object()  # StepOutcome.if_value of a step whose ``if`` was not evaluated


@dataclass
class _Step:
    index: int
    uses: str
    alias: str
    if_: str
    continue_on_error: bool
    config: Any  # None when the step has no config
    error_threshold: int
    timeout: float | None
    vars: list[tuple[str, str]]


@dataclass
class _Meta:
    """StepExecutionMetadata (api/v1alpha1/promotion_types.go:443-463)."""

    alias: str
    continue_on_error: bool
    status: str = ""
    message: str = ""
    error_count: int = 0
    started_at: float | None = None
    finished_at: float | None = None

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


@dataclass
class StepOutcome:
    """One step as the Promotion's status shows it, plus what the model saw on the way."""

    alias: str
    uses: str
    status: str  # Succeeded | Skipped | Running | Failed | Errored | "" (never reached)
    message: str
    error_count: int
    attempts: int  # times its runner ran
    config: Any  # the last evaluated config it ran with (None if never built)
    if_value: Any  # what its ``if`` evaluated to, or NOT_EVALUATED (no ``if``, or never reached)
    started_at: float | None
    finished_at: float | None


@dataclass
class PromotionResult:
    """The end of a simulated Promotion: its phase and message, each step, every HTTP request sent."""

    phase: str  # Succeeded | Failed | Errored | Running (still running when the simulation stopped)
    message: str
    steps: list[StepOutcome]
    requests: list[HttpRequest]
    state: dict[str, Any]  # the shared state (outputs) at the end
    reconciles: int
    clock: float  # simulated time at the end, in seconds
    stalled: bool = False  # the reconciler would not requeue a Running Promotion

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


@dataclass
class _StepResult:
    status: str
    output: Any = NIL_MAP  # Output map[string]any: nil unless the step set it
    retry_after: float | None = None
    message: str = ""


@dataclass
class _StepError:
    message: str
    terminal: bool


class _ControllerPanic(Exception):
    """A panic outside the step runners; the Promotion reconciler recovers it (promotions.go:403-433)."""


def _schema_dir() -> Path:
    root = Path(__file__).resolve().parents[1]
    return Path(os.environ.get("KARGO_SCHEMAS", root.parent / "shared" / "kargo-schemas")) / "promotion-steps"


@cache
def _step_schema(kind: str) -> dict[str, Any]:
    path = _schema_dir() / f"{kind}-config.json"
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
        self.stage = stage
        self.name = stage["metadata"]["name"]
        self.project = stage["metadata"].get("namespace", "")
        self.freight = freight
        self.freight_context = _freight_context(stage, references, warehouses)
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
        self.metas: list[_Meta] = []
        self.current_step = 0
        self.requests: list[HttpRequest] = []
        self.attempts: dict[str, int] = {}
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
        table = {**_data_functions(self.secrets, self.config_maps), **_freight_functions(self.freight_context)}
        if status:
            table.update(_status_functions(self.metas))
        return table

    def evaluate_vars(self, step: _Step) -> dict[str, Any]:
        # evaluator.go:168-217 (v1.11.2): promotion vars see ctx and earlier vars; step vars also see outputs.
        variables: dict[str, Any] = {}
        functions = self.functions(status=False)
        for name, value in self.vars:
            try:
                variables[name] = evaluate_template(value, {**self.ctx_env(), "vars": variables}, functions)
            except KargoError as error:
                raise KargoError(f"error pre-processing promotion variable {go_quote(name)}: {error}") from error
        for name, value in step.vars:
            try:
                variables[name] = evaluate_template(value, self.full_env(variables), functions)
            except KargoError as error:
                raise KargoError(f"error pre-processing promotion variable {go_quote(name)}: {error}") from error
        return variables

    def should_skip(self, step: _Step, meta: _Meta) -> bool:
        # evaluator.go:224-272 (v1.11.2)
        if step.if_ == "":
            return any(m.status in ("Errored", "Failed") for m in self.metas if not m.continue_on_error)
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

    def validate(self, kind: str, config: Any) -> _StepError | None:
        problems = _schema_errors(kind, config)
        if problems:
            return _StepError(f"invalid {kind} config: " + "\n".join(problems), terminal=True)
        return None

    def run_step(self, step: _Step, config: Any) -> tuple[_StepResult, _StepError | None]:
        if step.uses == "fail":
            # pkg/promotion/runner/builtin/failer.go:40-63 (v1.11.2)
            problem = self.validate("fail", config)
            if problem:
                return _StepResult("Failed"), problem
            message = config.get("message", "")
            return _StepResult("Failed"), _StepError(f"failed: {message}" if message else "failed", terminal=True)
        if step.uses == "compose-output":
            # pkg/promotion/runner/builtin/output_composer.go:64-88 (v1.11.2)
            problem = self.validate("compose-output", config)
            if problem:
                return _StepResult("Failed"), problem
            return _StepResult("Succeeded", output=dict(config)), None
        problem = self.validate("http", config)  # http_requester.go:71-88
        if problem:
            return _StepResult("Failed"), problem
        return self.run_http(step, config)

    def run_http(self, step: _Step, cfg: Mapping[str, Any]) -> tuple[_StepResult, _StepError | None]:
        # pkg/promotion/runner/builtin/http_requester.go:90-199 (v1.11.2)
        method = cfg.get("method") or "GET"
        url, parse_error = _build_url(cfg["url"], cfg.get("queryParams") or [])
        if parse_error:
            return _StepResult("Errored"), _StepError(
                f"error building HTTP request: error creating HTTP request: {parse_error}", terminal=True
            )
        try:
            timeout = go_parse_duration(cfg["timeout"]) if cfg.get("timeout") else _REQUEST_TIMEOUT_DEFAULT
        except ValueError as error:
            return _StepResult("Errored"), _StepError(
                f"error creating HTTP client: error parsing timeout: {error}", terminal=True
            )
        headers = [(canonical_header_key(h["name"]), h["value"]) for h in cfg.get("headers") or []]
        request = HttpRequest(
            method,
            url,
            headers,
            cfg.get("body", ""),
            timeout,
            step.alias,
            self.now,
            bool(cfg.get("insecureSkipTLSVerify")),
            cfg.get("proxy", ""),
        )
        op = method[:1] + method[1:].lower()  # Go src/net/http/client.go urlErrorOp
        transport_problem = _transport_check(request)
        if transport_problem:
            return _StepResult("Errored"), _StepError(
                f"error sending HTTP request: {op} {go_quote(url)}: {transport_problem}", terminal=False
            )
        if self.http is None:
            raise ModelLimit(f"step {step.alias!r} sends an HTTP request but run_promotion got no http handler")
        self.requests.append(request)
        try:
            response = self.http(request)
        except Exception as error:  # a transport error: http_requester.go:107-111
            return _StepResult("Errored"), _StepError(
                f"error sending HTTP request: {op} {go_quote(url)}: {error}", terminal=False
            )
        try:
            env = _response_env(response, cfg.get("responseContentType", ""))
        except KargoError as error:
            return _StepResult("Errored"), _StepError(
                f"error building expression context from HTTP response: {error}", terminal=False
            )
        try:
            success = _criteria(cfg.get("successExpression", ""), "success", env)
            failure = _criteria(cfg.get("failureExpression", ""), "failure", env)
        except _CriteriaError as error:
            return _StepResult("Errored"), _StepError(error.message, error.terminal)
        if failure:  # http_requester.go:134-156: failure wins over success
            message, problem = _error_message(cfg.get("errorExpression", ""), env)
            if problem:
                return _StepResult("Errored"), problem
            text = f"HTTP ({response.status}) response met failure criteria"
            return _StepResult("Failed"), _StepError(f"{text}: {go_quote(message)}" if message else text, True)
        if success or (success is None and failure is None and 200 <= response.status < 300):
            try:  # http_requester.go:157-181
                outputs = _build_outputs(cfg.get("outputs") or [], env)
            except _CriteriaError as error:
                return _StepResult("Errored"), _StepError(error.message, error.terminal)
            return _StepResult("Succeeded", output=outputs), None
        if success is None and failure is None:
            # http_requester.go:182-183: non-2xx without criteria: Failed, no error -> polled, never counted.
            return _StepResult("Failed"), None
        # http_requester.go:184-198: criteria unmet -> Running, re-sent after the poll interval.
        try:
            interval = go_parse_duration(cfg["pollInterval"]) if cfg.get("pollInterval") else None
        except ValueError as error:
            return _StepResult("Errored"), _StepError(f"error parsing pollInterval: {error}", terminal=False)
        return _StepResult("Running", retry_after=_HTTP_POLL_INTERVAL_DEFAULT if interval is None else interval), None

    # --- the orchestrator (pkg/promotion/local_orchestrator.go, v1.11.2) ---

    def meta_for(self, step: _Step) -> _Meta:
        # pkg/promotion/promotion.go:213-230 (v1.11.2): found by alias, else appended.
        for meta in self.metas:
            if meta.alias == step.alias:
                return meta
        meta = _Meta(step.alias, step.continue_on_error)
        self.metas.append(meta)
        return meta

    def execute_steps(self) -> tuple[str, str, int, _StepError | None, float | None]:
        """One reconcile: (phase, message, current step, retryable error, suggested requeue)."""
        for index in range(self.current_step, len(self.steps)):  # local_orchestrator.go:71
            step = self.steps[index]
            meta = self.meta_for(step)
            self.current_alias = step.alias
            if meta.started_at is None:  # local_orchestrator.go:105-121: "if" only before the step starts
                try:
                    skip = self.should_skip(step, meta)
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
            self.attempts[step.alias] = self.attempts.get(step.alias, 0) + 1
            result, error = self.run_step(step, config)
            if error is not None:  # local_executor.go:88-97 (v1.11.2)
                prefix = "error running step" if result.status == "Errored" else "step"
                error = _StepError(f"{prefix} {go_quote(step.alias)}: {error.message}", error.terminal)
            self.state[step.alias] = result.output  # local_orchestrator.go:212-233 (propagateStepOutput)
            error = self.reconcile_result(meta, step, result, error)
            if not self.complete(meta, step, error):  # local_orchestrator.go:179-189
                return "Running", meta.message if error else "", index, error, result.retry_after
        phase, message = self.final_phase()
        return phase, message, len(self.steps) - 1, None, None

    def reconcile_result(
        self, meta: _Meta, step: _Step, result: _StepResult, error: _StepError | None
    ) -> _StepError | None:
        # local_orchestrator.go:235-270 (v1.11.2)
        meta.status, meta.message = result.status, result.message
        if error is not None:
            if meta.status != "Failed":
                meta.status = "Errored"
            meta.message = error.message
            return error
        if result.status == "Errored":
            return _StepError(f"step {go_quote(step.alias)} errored: {meta.message or 'no details provided'}", False)
        return None

    def complete(self, meta: _Meta, step: _Step, error: _StepError | None) -> bool:
        # local_orchestrator.go:272-345 (v1.11.2)
        if meta.status in ("Succeeded", "Skipped"):
            meta.finished_at = self.now if meta.finished_at is None else meta.finished_at
            return True
        if error is not None and error.terminal:
            if meta.status == "Failed":
                meta.message = error.message
            else:
                meta.status = "Errored"
                meta.message = f"an unrecoverable error occurred: {error.message}"
            meta.finished_at = self.now if meta.finished_at is None else meta.finished_at
            return True
        if error is not None:
            meta.error_count += 1
            threshold = step.error_threshold or _DEFAULT_ERROR_THRESHOLD
            if meta.error_count >= threshold:
                meta.status = "Failed" if meta.status == "Failed" else "Errored"
                meta.message = f"step {go_quote(step.alias)} met error threshold of {threshold}: {meta.message}"
                meta.finished_at = self.now if meta.finished_at is None else meta.finished_at
                return True
        timeout = step.timeout or 0.0  # no modelled step kind has a default timeout (registry.go:63-75)
        if timeout > 0 and meta.started_at is not None and self.now - meta.started_at > timeout:
            meta.status = "Errored"
            meta.message = f"step {go_quote(step.alias)} timed out after {go_duration_string(timeout)}"
            meta.finished_at = self.now if meta.finished_at is None else meta.finished_at
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

    def requeue_after(self, previous_step: int, previous_metas: list[_Meta], suggested: float | None) -> float:
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
            meta = by_alias.get(step.alias, _Meta(step.alias, step.continue_on_error))
            outcomes.append(
                StepOutcome(
                    step.alias,
                    step.uses,
                    meta.status,
                    meta.message,
                    meta.error_count,
                    self.attempts.get(step.alias, 0),
                    self.configs.get(step.alias),
                    self.if_values.get(step.alias, NOT_EVALUATED),
                    meta.started_at,
                    meta.finished_at,
                )
            )
        return outcomes


class _CriteriaError(Exception):
    def __init__(self, message: str, terminal: bool) -> None:
        super().__init__(message)
        self.message = message
        self.terminal = terminal


def _criteria(source: str, kind: str, env: Mapping[str, Any]) -> bool | None:
    # http_requester.go:203-257 (v1.11.2): plain expr.Compile (builtins only, no Kargo functions, no quote())
    # against {"response": ...}; a compile error is terminal, a run error is not; non-bool is an error.
    if not source:
        return None
    try:
        program = compile_expr(source)
    except ModelLimit:
        raise
    except ExprError as error:
        raise _CriteriaError(f"error compiling {kind} expression {go_quote(source)}: {error}", True) from None
    try:
        value = program.run(env)
    except ModelLimit:
        raise
    except ExprError as error:
        raise _CriteriaError(f"error evaluating {kind} expression {go_quote(source)}: {error}", False) from None
    if isinstance(value, bool):
        return value
    raise _CriteriaError(
        f"{kind} expression {go_quote(source)} did not evaluate to a boolean (got {go_type_of(value)})", False
    )


def _error_message(source: str, env: Mapping[str, Any]) -> tuple[str, _StepError | None]:
    # http_requester.go:272-298 (v1.11.2): compile error -> terminal Errored; run error or non-string -> "".
    if not source:
        return "", None
    try:
        program = compile_expr(source)
    except ModelLimit:
        raise
    except ExprError as error:
        return "", _StepError(f"error compiling error expression {go_quote(source)}: {error}", terminal=True)
    try:
        value = program.run(env)
    except ModelLimit:
        raise
    except ExprError:
        return "", None
    return (value if type(value) is str else ""), None


def _build_outputs(outputs: Sequence[Mapping[str, str]], env: Mapping[str, Any]) -> dict[str, Any]:
    # http_requester.go:435-452 (v1.11.2): a non-nil map, even with no outputs.
    result: dict[str, Any] = {}
    for output in outputs:
        try:
            program = compile_expr(output["fromExpression"])
        except ModelLimit:
            raise
        except ExprError as error:
            raise _CriteriaError(
                "error extracting outputs from HTTP response: "
                f"error compiling output expression {go_quote(output['name'])}: {error}",
                True,
            ) from None
        try:
            result[output["name"]] = program.run(env)
        except ModelLimit:
            raise
        except ExprError as error:
            raise _CriteriaError(
                "error extracting outputs from HTTP response: "
                f"error evaluating output expression {go_quote(output['name'])}: {error}",
                False,
            ) from None
    return result


_PERCENT = re.compile(r"%(?![0-9a-fA-F]{2})")


def _query_unescape(text: str) -> str | None:
    return None if _PERCENT.search(text) else unquote_plus(text)


def _build_url(url: str, query_params: Sequence[Mapping[str, str]]) -> tuple[str, str | None]:
    """Go's ``http.NewRequest`` URL parse, then the query params added and re-encoded (sorted by key)."""
    # http_requester.go:300-328 (v1.11.2); Go src/net/url/url.go Parse (the checks modelled: control characters,
    # bad %-escapes before the query, a non-numeric port) and Values.Encode.
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return url, f"parse {go_quote(url)}: net/url: invalid control character in URL"
    head, hash_mark, fragment = url.partition("#")
    base, _, raw_query = head.partition("?")
    bad = _PERCENT.search(base)
    if bad:
        return url, f"parse {go_quote(url)}: invalid URL escape {go_quote(base[bad.start() : bad.start() + 3])}"
    authority = base.split("://", 1)[1].split("/", 1)[0] if "://" in base else ""
    host_port = authority.rsplit("@", 1)[-1]
    if ":" in host_port and not host_port.endswith("]"):
        port = host_port.rsplit(":", 1)[1]
        if port and not port.isdigit():
            return url, f"parse {go_quote(url)}: invalid port {go_quote(':' + port)} after host"
    if not query_params:
        return url, None
    values: dict[str, list[str]] = {}
    for part in raw_query.split("&") if raw_query else []:
        if ";" in part or not part:
            continue
        key, _, value = part.partition("=")
        key_text, value_text = _query_unescape(key), _query_unescape(value)
        if key_text is not None and value_text is not None:
            values.setdefault(key_text, []).append(value_text)
    for param in query_params:
        values.setdefault(param["name"], []).append(param["value"])
    encoded = "&".join(f"{quote_plus(k, safe='')}={quote_plus(v, safe='')}" for k in sorted(values) for v in values[k])
    return base + "?" + encoded + (hash_mark + fragment), None


def _transport_check(request: HttpRequest) -> str | None:
    """What Go's client refuses before sending: scheme, host, header names and values."""
    # Go src/net/http/transport.go roundTrip, src/net/http/client.go send.
    scheme = request.url.split("://", 1)[0].lower() if "://" in request.url else ""
    if scheme not in ("http", "https"):
        return f"unsupported protocol scheme {go_quote(scheme)}"
    authority = request.url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if not authority.rsplit("@", 1)[-1]:
        return "http: no Host in request URL"
    for name, value in request.headers:
        if not name or any(c not in _TOKEN_CHARS for c in name):
            return f"net/http: invalid header field name {go_quote(name)}"
        if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in value):
            return f"net/http: invalid header field value for {go_quote(name)}"
    return None


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
                index,
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
    target = _with_origin(Freight.of(freight), stage)
    references = [target]
    if len(_requested(stage)) > 1:  # promotions.go:675-701: inherited Freight only for several origins
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
    phase, message, stalled = "Running", "", False
    while reconciles < max_reconciles:
        reconciles += 1
        previous_step = run.current_step
        previous_metas = [_Meta(**vars(m)) for m in run.metas]
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
            meta.finished_at = None if meta.finished_at is None else math.floor(meta.finished_at)
        if error is not None:  # promotions.go:529-539: a retryable error: progressive backoff
            delay = error_backoff(failures)
            failures += 1
        else:  # promotions.go:541-544
            failures = 0
            delay = run.requeue_after(previous_step, previous_metas, retry_after)
            if delay <= 0:
                # controller-runtime only requeues a positive RequeueAfter; nothing else wakes the Promotion.
                stalled = True
                break
        run.now += delay + _RECONCILE_TIME
    return PromotionResult(phase, message, run.outcomes(), run.requests, dict(run.state), reconciles, run.now, stalled)


# ---------------------------------------------------------------------------------------------------------------
# Verification arguments (pkg/rollouts/analysis_run_builder.go, pkg/controller/stages/regular_stages.go)
# ---------------------------------------------------------------------------------------------------------------


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
    target = _with_origin(Freight.of(freight), stage)
    references = [target, *(Freight.of(f) for f in inherited_freight)]
    context = _freight_context(stage, references, warehouses)
    # regular_stages.go:1500-1524 (v1.11.2): ctx {project, stage}; data, freight and utility functions.
    functions = {**_data_functions(secrets or {}, config_maps or {}), **_freight_functions(context)}
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
