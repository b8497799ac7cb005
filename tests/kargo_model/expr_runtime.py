"""expr-lang's VM runtime over the model's Go values (expr-lang vm/runtime/runtime.go, helpers[generated].go; v1.17.8).

The operators ``==``, ``<``/``>``/``<=``/``>=``, ``+``, ``-`` and ``in``, member access (``runtime.Fetch`` and
``runtime.FetchField``), and the ``http.Header`` methods an expression can call. What Go would panic on raises
:class:`Panic`, which the VM turns into a run error.
"""

from __future__ import annotations

from typing import Any

from .errors import ModelLimit
from .go import (
    NIL_STRING_MAP,
    NIL_STRINGS,
    GoFunc,
    GoHeader,
    GoOpaque,
    GoState,
    GoStringMap,
    GoStruct,
    TypedNil,
    canonical_header_key,
    go_deep_equal,
    go_type_of,
    go_v,
    is_integer,
    is_nil,
    is_number,
)


class Panic(Exception):
    """A Go panic inside expr-lang's VM; vm.Run recovers it into an error (expr-lang vm/vm.go:54-70)."""


def go_equal(a: Any, b: Any) -> bool:
    """expr-lang's ``==``: numbers across types, lists element-wise, nil == any typed nil, else DeepEqual."""
    # expr-lang vm/runtime/helpers[generated].go:11-700 (v1.17.8)
    if is_number(a) and is_number(b):
        if is_integer(a) and is_integer(b):
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
    return go_deep_equal(a, b)


def go_compare(op: str, a: Any, b: Any) -> bool:
    # expr-lang vm/runtime/helpers[generated].go:702-2079 (v1.17.8): numbers or strings, else a panic.
    if is_number(a) and is_number(b):
        x, y = (int(a), int(b)) if is_integer(a) and is_integer(b) else (float(a), float(b))
    elif type(a) is str and type(b) is str:
        x, y = a, b
    else:
        raise Panic(f"invalid operation: {go_type_of(a)} {op} {go_type_of(b)}")
    return {"<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op]


def go_add(a: Any, b: Any) -> Any:
    # expr-lang vm/runtime/helpers[generated].go:2082-2426 (v1.17.8): integers of any kind add as Go int.
    if is_number(a) and is_number(b):
        if is_integer(a) and is_integer(b):
            total = int(a) + int(b)
            if not -(2**63) <= total < 2**63:
                raise ModelLimit("Go int overflow is not modelled")
            return total
        return float(a) + float(b)
    if type(a) is str and type(b) is str:
        return a + b
    raise Panic(f"invalid operation: {go_type_of(a)} + {go_type_of(b)}")


def go_subtract(a: Any, b: Any) -> Any:
    # expr-lang vm/runtime/helpers[generated].go:2429-2768 (v1.17.8): numbers only.
    if is_number(a) and is_number(b):
        if is_integer(a) and is_integer(b):
            return go_add(int(a), -int(b))
        return float(a) - float(b)
    raise Panic(f"invalid operation: {go_type_of(a)} - {go_type_of(b)}")


def _go_to_int(value: Any) -> int:
    # expr-lang vm/runtime/runtime.go:323-352 (v1.17.8)
    if is_number(value):
        return int(value)
    raise Panic(f"invalid operation: int({go_type_of(value)})")


_STATE_METHODS = frozenset({"Get", "Set", "ToJSON"})
_HEADER_METHODS = frozenset({"Add", "Clone", "Del", "Get", "Set", "Values", "Write", "WriteSubset"})


def _map_zero(container: Any) -> Any:
    if isinstance(container, GoStringMap) or container is NIL_STRING_MAP:
        return ""
    if isinstance(container, GoHeader):
        return NIL_STRINGS
    return None


def _map_key(key: Any) -> str:
    # reflect.Value.MapIndex on a map[string]...: nil is the zero key "", any other non-string panics.
    if key is None:
        return ""
    if not isinstance(key, str):
        raise Panic(f"reflect.Value.MapIndex: value of type {go_type_of(key)} is not assignable to type string")
    return key


def go_fetch(container: Any, key: Any) -> Any:
    """expr-lang's ``runtime.Fetch`` (``a.b`` / ``a[b]`` on a value of unknown static type)."""
    # expr-lang vm/runtime/runtime.go:21-102 (v1.17.8)
    if container is None:
        raise Panic(f"cannot fetch {go_v(key)} from <nil>")  # runtime.go:22-25
    if isinstance(container, GoOpaque):
        raise ModelLimit(f"the model does not represent {container.go_type}")
    # runtime.go:27-35: methods first, for any type that has some.
    if isinstance(container, GoState) and key in _STATE_METHODS:
        raise ModelLimit(f"outputs.{key} is promotion.State's method {key}, which the model does not represent")
    if isinstance(container, GoHeader) and key in _HEADER_METHODS:
        if key == "Get":
            return GoFunc("func(string) string", lambda name: header_get(container, name), 1)
        if key == "Values":
            return GoFunc(
                "func(string) []string", lambda name: container.get(canonical_header_key(name), NIL_STRINGS), 1
            )
        raise ModelLimit(f"http.Header.{key} is not modelled")
    if isinstance(container, TypedNil):
        if container.kind == "map":
            _map_key(key)
            return _map_zero(container)
        if container.kind == "slice":
            raise Panic(f"index out of range: {_go_to_int(key)} (array length is 0)")
        raise Panic(f"cannot fetch {go_v(key)} from {container.go_type}")
    if isinstance(container, list):  # runtime.go:44-56
        index, length = _go_to_int(key), len(container)
        if index < 0:
            index += length
        if not 0 <= index < length:
            raise Panic(f"index out of range: {index} (array length is {length})")
        return container[index]
    if isinstance(container, str):  # runtime.go:44-45: an index into the bytes of the string
        _go_to_int(key)
        raise ModelLimit("indexing a string (which gives a byte) is not modelled")
    if isinstance(container, dict):  # runtime.go:58-70: a missing key gives the element type's zero value
        key = _map_key(key)
        return container[key] if key in container else _map_zero(container)
    if isinstance(container, GoStruct):  # runtime.go:72-100
        if not isinstance(key, str):
            raise Panic(f"interface conversion: interface {{}} is {go_type_of(key)}, not string")
        if key in container.fields:
            return _touch(container.fields[key])
    raise Panic(f"cannot fetch {go_v(key)} from {go_type_of(container)}")


def _touch(value: Any) -> Any:
    if isinstance(value, GoOpaque):
        raise ModelLimit(f"the model does not represent {value.go_type}")
    return value


def go_fetch_field(container: Any, name: str) -> Any:
    """expr-lang's ``runtime.FetchField`` (a field of a statically known struct, e.g. ``imageFrom(...).Digest``)."""
    # expr-lang vm/runtime/runtime.go:109-126 (v1.17.8): reflect.Indirect of a nil pointer is the zero Value.
    if container is None:
        raise Panic(f"cannot get {name} from <nil>")
    if isinstance(container, TypedNil):
        raise Panic("reflect: call of reflect.Value.Field on zero Value")
    if not isinstance(container, GoStruct):
        raise Panic(f"cannot get {name} from {go_type_of(container)}")
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
        return _map_key(needle) in haystack
    if isinstance(haystack, GoStruct):
        if not isinstance(needle, str):
            raise Panic(f"cannot use {go_type_of(needle)} as field name of {go_type_of(haystack)}")
        return needle in haystack.fields
    raise Panic(f'operator "in" not defined on {go_type_of(haystack)}')


def header_get(header: GoHeader, name: Any) -> str:
    # Go src/net/http/header.go Get: case-insensitive, first value or "".
    if name is None:
        name = ""
    if not isinstance(name, str):
        raise Panic(f"reflect: Call using {go_type_of(name)} as type string")
    values = header.get(canonical_header_key(name))
    return values[0] if values else ""
