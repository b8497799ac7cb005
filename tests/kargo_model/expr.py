"""expr-lang's static checker and evaluator, and ``expr.Compile`` / ``expr.Run`` as Kargo calls them (v1.17.8).

checker/checker.go and checker/nature for the types known at compile time (literals, and the declared Go types of
the functions Kargo gives expr.Function); compiler/compiler.go and vm/vm.go for what running an expression does.
Kargo compiles without ``expr.Env``, so every variable's type is unknown until it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ExprError, KargoError, ModelLimit, UnsupportedExprError
from .expr_parser import (
    COMPARISONS,
    ArrayLit,
    Binary,
    Builtin,
    Call,
    Chain,
    Cond,
    Ident,
    Literal,
    MapLit,
    Member,
    Node,
    Parser,
    Unary,
)
from .expr_runtime import Panic, go_add, go_compare, go_equal, go_fetch, go_fetch_field, go_in, go_subtract
from .go import GoFunc, go_type_of, is_integer, is_nil, is_number

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

    def error(self, message: str, node: Node) -> ExprError:
        return ExprError(message, "compile", self.src, node.pos)

    def visit(self, node: Node) -> Nature:
        if isinstance(node, Literal):
            value = node.value
            if value is None:
                return N_NIL
            if isinstance(value, bool):
                return N_BOOL
            return N_INT if isinstance(value, int) else N_FLOAT if isinstance(value, float) else N_STRING
        if isinstance(node, Ident):
            # checker.go:249-289: without expr.Env (Kargo passes none) a name is never an error, just unknown.
            if node.name == "$env":
                raise UnsupportedExprError("$env is not modelled", "compile", self.src, node.pos)
            fn = self.functions.get(node.name)
            return Nature("func", f"func {node.name}") if fn is not None else N_UNKNOWN
        if isinstance(node, Builtin):
            raise UnsupportedExprError(f"the builtin {node.name}() is not modelled", "compile", self.src, node.pos)
        if isinstance(node, Chain):
            return self.visit(node.node)
        if isinstance(node, ArrayLit):
            for item in node.items:
                self.visit(item)
            return N_ARRAY
        if isinstance(node, MapLit):
            for key, value in node.pairs:
                self.visit(key)
                self.visit(value)
            return N_MAP
        if isinstance(node, Unary):
            return self.unary(node)
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Cond):
            return self.conditional(node)
        if isinstance(node, Member):
            return self.member(node)
        if isinstance(node, Call):
            return self.call(node)
        raise ModelLimit(f"unknown node {node!r}")

    def unary(self, node: Unary) -> Nature:
        # checker.go:291-318 (v1.17.8)
        nature = self.visit(node.operand)
        if node.op in ("!", "not") and (nature.kind == "bool" or nature.unknown):
            return N_BOOL
        if node.op == "-" and (nature.number or nature.unknown):
            return nature if nature.number else N_UNKNOWN
        raise self.error(f"invalid operation: {node.op} (mismatched type {nature.go})", node)

    def binary(self, node: Binary) -> Nature:
        # checker.go:320-509 (v1.17.8)
        left, right, op = self.visit(node.left), self.visit(node.right), node.op
        if op in ("==", "!="):
            if left.comparable_to(right):
                return N_BOOL
        elif op in ("||", "&&", "or", "and"):
            if (left.kind == "bool" and right.kind == "bool") or left.maybe(right, "bool"):
                return N_BOOL
        elif op in COMPARISONS:
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

    def conditional(self, node: Cond) -> Nature:
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

    def member(self, node: Member) -> Nature:
        # checker.go:515-603 (v1.17.8)
        base, prop = self.visit(node.obj), self.visit(node.prop)
        name = node.prop.value if isinstance(node.prop, Literal) and isinstance(node.prop.value, str) else None
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

    def call(self, node: Call) -> Nature:
        # checker.go:638-693 and 996-1173 (v1.17.8)
        if isinstance(node.callee, Ident) and node.callee.name in self.functions:
            fn = self.functions[node.callee.name]
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

    def check_arguments(self, name: str, signature: Signature, node: Call, args: list[Nature]) -> ExprError | None:
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
    root: Node
    functions: Mapping[str, ExprFunction]

    def run(self, env: Mapping[str, Any]) -> Any:
        """expr.Run: a value, or an :class:`ExprError` (phase "run") for what the VM would panic on."""
        runner = _Runner(env, self.functions)
        try:
            return runner.eval(self.root)
        except Panic as panic:
            raise ExprError(str(panic), "run", self.source, runner.position) from None
        except _FunctionError as error:
            raise ExprError(str(error), "run", self.source, runner.position) from None


def function_table(functions: Mapping[str, Any] | None) -> dict[str, ExprFunction]:
    """The functions as ExprFunctions: an ExprFunction as it is, a plain callable untyped (no declared types)."""
    table: dict[str, ExprFunction] = {}
    for name, fn in (functions or {}).items():
        table[name] = fn if isinstance(fn, ExprFunction) else ExprFunction(name, fn)
    return table


def evaluate_expr(source: str, env: Mapping[str, Any], functions: Mapping[str, Any] | None = None) -> Any:
    """Compile and run one expr-lang expression (no template, no coercion)."""
    return compile_expr(source, function_table(functions)).run(env)


def compile_expr(source: str, functions: Mapping[str, ExprFunction] | None = None) -> CompiledExpr:
    """expr.Compile without ``expr.Env`` (as Kargo calls it): parse, then type-check what is statically known."""
    # expr-lang expr.go:229-261 (v1.17.8)
    table = dict(functions or {})
    root = Parser(source, table).parse()
    _Checker(source, table).visit(root)
    return CompiledExpr(source, _fold_logic(root), table)


def _fold_logic(node: Node) -> Node:
    """The optimizer's folds of `&&` and `||` with a literal bool, after the checker (expr.go:245-255,
    optimizer/fold.go:215-236 (v1.17.8)): `x && true` and `true && x` become `x`, `x || false`
    and `false || x` become `x`, and a literal `false` (`true`) on either side makes `&&` (`||`)
    that literal. So `vars.m && true` is the map: the bool assertion of the short circuit is gone.
    The file's other folds (literal arithmetic, `1 == 1`) are not modelled: they compute what the
    VM would, and change a result only by making a literal bool beside `&&` or `||`, which the
    generated Stages never write."""
    for name in ("operand", "left", "right", "obj", "callee", "cond", "then", "otherwise", "node"):
        if isinstance(child := getattr(node, name, None), Node):
            setattr(node, name, _fold_logic(child))
    if not isinstance(node, Binary) or node.op not in ("&&", "and", "||", "or"):
        return node

    def literal(side: Node) -> bool | None:
        return side.value if isinstance(side, Literal) and isinstance(side.value, bool) else None

    left, right, keep = literal(node.left), literal(node.right), node.op in ("&&", "and")
    if left is keep:  # true && x, false || x
        return node.right
    if right is keep:  # x && true, x || false
        return node.left
    if left is not None or right is not None:  # x && false, true || x, ...
        return Literal(node.pos, not keep)
    return node


class _Runner:
    def __init__(self, env: Mapping[str, Any], functions: Mapping[str, ExprFunction]) -> None:
        self.env = env
        self.functions = functions
        self.position: int | None = None

    def eval(self, node: Node) -> Any:
        self.position = node.pos
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Ident):
            # compiler.go:300-330 + vm.go:124-125: OpLoadConst, runtime.Fetch(env, name): a missing name is nil.
            return go_fetch(self.env, node.name) if isinstance(self.env, Mapping) else None
        if isinstance(node, Chain):
            try:
                result = self.eval(node.node)
            except _ChainNil:
                return None
            return None if is_nil(result) else result  # compiler.go:671-678: a typed nil becomes nil
        if isinstance(node, ArrayLit):
            return [self.eval(item) for item in node.items]
        if isinstance(node, MapLit):
            result: dict[str, Any] = {}
            for key_node, value_node in node.pairs:
                key, value = self.eval(key_node), self.eval(value_node)
                if not isinstance(key, str):  # vm.go:487-496: m[key.(string)]
                    raise Panic(f"interface conversion: interface {{}} is {go_type_of(key)}, not string")
                result[key] = value
            return result
        if isinstance(node, Unary):
            return self.unary(node)
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Cond):
            # compiler.go:1276-1290: OpJumpIfFalse asserts a bool.
            return self.eval(node.then if self.as_bool(self.eval(node.cond)) else node.otherwise)
        if isinstance(node, Member):
            base = self.eval(node.obj)
            if node.optional and is_nil(base):
                raise _ChainNil
            key = self.eval(node.prop)
            self.position = node.pos
            return go_fetch_field(base, key) if node.static_field else go_fetch(base, key)
        if isinstance(node, Call):
            return self.call(node)
        raise ModelLimit(f"unknown node {node!r}")

    @staticmethod
    def as_bool(value: Any) -> bool:
        # vm.go:168-207: OpNot / OpJumpIfTrue / OpJumpIfFalse do value.(bool).
        if isinstance(value, bool):
            return value
        shown = "nil" if value is None else go_type_of(value)
        raise Panic(f"interface conversion: interface {{}} is {shown}, not bool")

    def unary(self, node: Unary) -> Any:
        value = self.eval(node.operand)
        if node.op in ("!", "not"):
            return not self.as_bool(value)
        # vm/runtime/runtime.go:276-305 (Negate)
        if isinstance(value, bool) or not is_number(value):
            raise Panic(f"invalid operation: - {go_type_of(value)}")
        return type(value)(-value) if is_integer(value) else -value

    def binary(self, node: Binary) -> Any:
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
        if op in COMPARISONS:
            return go_compare(op, left, right)
        if op == "+":
            return go_add(left, right)
        if op == "-":
            return go_subtract(left, right)
        if op == "in":
            return go_in(left, right)
        raise ModelLimit(f"operator {op} is not modelled")

    def call(self, node: Call) -> Any:
        callee = node.callee
        if isinstance(callee, Ident) and callee.name in self.functions:
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
            raise Panic("invalid operation: cannot call nil")
        if not isinstance(target, GoFunc):
            raise Panic(f"invalid operation: cannot call non-function of type {go_type_of(target)}")
        if len(args) != target.num_in:
            raise Panic(f"invalid number of arguments: expected {target.num_in}, got {len(args)}")
        return target.fn(*args)
