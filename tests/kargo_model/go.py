"""Go as the Kargo model needs it: Go values, and the standard library behaviour Kargo's output depends on.

Python values stand for Go's (dict = ``map[string]any``, list = ``[]any``, int = ``int``, float = ``float64``); the
classes here stand for the Go types whose behaviour differs (typed nils, ``int64``, named strings, ``http.Header``,
structs, funcs). The functions follow Go's ``strconv`` (ParseFloat, ParseBool, Quote, FormatFloat),
``encoding/json`` (Marshal, MarshalIndent, Unmarshal into ``any``), ``time`` (ParseDuration, Duration.String),
``net/textproto`` (CanonicalMIMEHeaderKey) and ``reflect.DeepEqual``, each citing its file under Go's ``src/``.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .errors import ModelLimit, TemplateError

# ---------------------------------------------------------------------------------------------------------------
# Go values
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


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def go_v(value: Any) -> str:
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


def go_json_float(value: float) -> str:
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
    return is_number(value) and value == 0


def go_json_marshal(value: Any) -> str:
    """Go's ``json.Marshal`` of a modelled value: sorted keys, no spaces, HTML-safe strings, Go float format."""
    if value is None or isinstance(value, TypedNil):
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return go_json_float(value)
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


def go_json_indent(value: Any, level: int = 0) -> str:
    # Go src/encoding/json/indent.go: json.MarshalIndent(v, "", "  ").
    pad = "  " * (level + 1)
    if isinstance(value, dict) and value and not isinstance(value, GoStruct):
        items = [f"{pad}{_go_json_string(k)}: {go_json_indent(value[k], level + 1)}" for k in sorted(value)]
        return "{\n" + ",\n".join(items) + "\n" + "  " * level + "}"
    if isinstance(value, list) and value:
        items = [pad + go_json_indent(item, level + 1) for item in value]
        return "[\n" + ",\n".join(items) + "\n" + "  " * level + "]"
    if isinstance(value, GoStruct):
        return go_json_indent(json.loads(go_json_marshal(value)), level)
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


def is_token(text: str) -> bool:
    """An HTTP token, as Go checks header names (``httpguts.ValidHeaderFieldName``) and media types (mime isToken)."""
    return bool(text) and all(char in _TOKEN_CHARS for char in text)


def canonical_header_key(name: str) -> str:
    """Go's ``textproto.CanonicalMIMEHeaderKey`` (``x-ratelimit-remaining`` -> ``X-Ratelimit-Remaining``)."""
    if not is_token(name):
        return name
    out, upper = [], True
    for char in name:
        out.append(char.upper() if upper else char.lower())
        upper = char == "-"
    return "".join(out)


def go_deep_equal(a: Any, b: Any) -> bool:
    # Go src/reflect/deepequal.go: identical types, then values; a nil map is not an empty map.
    if go_type_of(a) != go_type_of(b):
        return False
    if isinstance(a, TypedNil) or a is None:
        return isinstance(b, TypedNil) or b is None
    if isinstance(b, TypedNil):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(go_deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(go_deep_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, GoStruct):
        return all(go_deep_equal(a.fields[k], b.fields[k]) for k in a.fields)
    if isinstance(a, (GoFunc, GoOpaque)):
        return False
    return bool(a == b)
