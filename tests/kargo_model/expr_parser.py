"""expr-lang's lexer and parser (expr-lang parser/lexer/*.go, parser/parser.go, parser/operator; v1.17.8).

Source text in, syntax tree out, with expr-lang's compile errors; the subset that Kargo configs use, and
:class:`UnsupportedExprError` for the rest (sequences, ``let``, pipes, predicates, slices, bytes literals).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

from .errors import ExprError, UnsupportedExprError
from .go import go_parse_float, go_quote

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
class Node:
    pos: int


@dataclass(eq=False)
class Literal(Node):
    value: Any


@dataclass(eq=False)
class Ident(Node):
    name: str


@dataclass(eq=False)
class Member(Node):
    obj: Node
    prop: Node
    optional: bool = False
    method: bool = False
    static_field: bool = field(default=False, init=False)


@dataclass(eq=False)
class Call(Node):
    callee: Node
    args: list[Node]


@dataclass(eq=False)
class Builtin(Node):
    name: str
    args: list[Node]


@dataclass(eq=False)
class Unary(Node):
    op: str
    operand: Node


@dataclass(eq=False)
class Binary(Node):
    op: str
    left: Node
    right: Node


@dataclass(eq=False)
class Cond(Node):
    cond: Node
    then: Node
    otherwise: Node


@dataclass(eq=False)
class Chain(Node):
    node: Node


@dataclass(eq=False)
class ArrayLit(Node):
    items: list[Node]


@dataclass(eq=False)
class MapLit(Node):
    pairs: list[tuple[Node, Node]]


# expr-lang parser/operator/operator.go (v1.17.8): precedence, and Right associativity for ** and ^.
_UNARY = {"not": 50, "!": 50, "-": 90, "+": 90}
_BINARY = {"|": 0, "or": 10, "||": 10, "and": 15, "&&": 15, "==": 20, "!=": 20, "<": 20, ">": 20, ">=": 20}
_BINARY |= {"<=": 20, "in": 20, "matches": 20, "contains": 20, "startsWith": 20, "endsWith": 20, "..": 25}
_BINARY |= {"+": 30, "-": 30, "*": 60, "/": 60, "%": 60, "**": 100, "^": 100, "??": 500}
_RIGHT_ASSOCIATIVE = frozenset({"**", "^"})
COMPARISONS = frozenset({"<", ">", ">=", "<="})
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


class Parser:
    def __init__(self, source: str, functions: Container[str]) -> None:
        self.src = source
        self.toks = _Lexer(source).tokens()
        self.i = 0
        self.functions = functions  # the names of the configured functions

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

    def parse(self) -> Node:
        # parser.go:60-98, 199-218: a sequence "a; b" is not modelled.
        node = self.parse_expression(0)
        if self.cur.is_("Operator", ";") and self.toks[self.i + 1].kind == "EOF":
            self.advance()  # parser.go:204-207: a trailing semicolon is allowed
        if self.cur.is_("Operator", ";"):
            raise self.unsupported("a sequence of expressions (;)")
        if self.cur.kind != "EOF":
            raise self.error(f"unexpected token {self.cur}")
        return node

    def parse_expression(self, precedence: int) -> Node:
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
            if op in COMPARISONS:
                left = self.parse_comparison(left, token)
            else:
                right = self.parse_expression(_BINARY[op] if op in _RIGHT_ASSOCIATIVE else _BINARY[op] + 1)
                left = Binary(token.pos, op, left, right)
                if negate:
                    left = Unary(token.pos, "not", left)
            previous = op
        if precedence == 0:
            left = self.parse_conditional(left)
        return left

    def parse_comparison(self, left: Node, token: _Token) -> Node:
        # parser.go:907-940: a < b < c is (a < b) && (b < c).
        root: Node | None = None
        while True:
            comparator = self.parse_expression(_BINARY[token.value] + 1)
            node = Binary(token.pos, token.value, left, comparator)
            root = node if root is None else Binary(token.pos, "&&", root, node)
            left, token = comparator, self.cur
            if not (token.kind == "Operator" and token.value in COMPARISONS):
                return root
            self.advance()

    def parse_conditional(self, node: Node) -> Node:
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
            node = Cond(token.pos, node, then, otherwise)
        return node

    def parse_primary(self) -> Node:
        # parser.go:394-445 (v1.17.8)
        token = self.cur
        if token.kind == "Operator" and token.value in _UNARY:
            self.advance()
            if token.value == "+":
                raise self.unsupported("unary +", token)
            operand = self.parse_expression(_UNARY[token.value])
            return self.parse_postfix(Unary(token.pos, token.value, operand))
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

    def parse_secondary(self) -> Node:
        # parser.go:447-551 (v1.17.8)
        token = self.cur
        if token.kind == "Identifier":
            self.advance()
            if token.value in ("true", "false", "nil"):
                return Literal(token.pos, {"true": True, "false": False, "nil": None}[token.value])
            node: Node = self.parse_call(token) if self.cur.is_("Bracket", "(") else Ident(token.pos, token.value)
        elif token.kind == "Number":
            self.advance()
            return Literal(token.pos, self.number(token))
        elif token.kind == "String":
            self.advance()
            node = Literal(token.pos, token.value)
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

    def parse_call(self, token: _Token) -> Node:
        # parser.go:569-645: builtins and predicates unless a configured function of that name overrides them.
        overridden = token.value in self.functions
        if token.value in _PREDICATES and not overridden:
            raise self.unsupported(f"the builtin {token.value}()", token)
        args = self.parse_arguments()
        if token.value in _BUILTINS and not overridden:
            return Builtin(token.pos, token.value, args)
        return Call(token.pos, Ident(token.pos, token.value), args)

    def parse_arguments(self) -> list[Node]:
        # parser.go:647-666
        self.expect("Bracket", "(")
        args: list[Node] = []
        while not self.cur.is_("Bracket", ")"):
            if args:
                self.expect("Operator", ",")
            if self.cur.is_("Bracket", ")"):
                break
            args.append(self.parse_expression(0))
        self.expect("Bracket", ")")
        return args

    def parse_array(self) -> Node:
        # parser.go:700-722
        token = self.cur
        self.expect("Bracket", "[")
        items: list[Node] = []
        while not self.cur.is_("Bracket", "]"):
            if items:
                self.expect("Operator", ",")
                if self.cur.is_("Bracket", "]"):
                    break
            items.append(self.parse_expression(0))
        self.expect("Bracket", "]")
        return ArrayLit(token.pos, items)

    def parse_map(self) -> Node:
        # parser.go:724-775: keys are quoted strings, numbers or identifiers (all as strings), or (expressions).
        token = self.cur
        self.expect("Bracket", "{")
        pairs: list[tuple[Node, Node]] = []
        while not self.cur.is_("Bracket", "}"):
            if pairs:
                self.expect("Operator", ",")
                if self.cur.is_("Bracket", "}"):
                    break
                if self.cur.is_("Operator", ","):
                    raise self.error(f"unexpected token {self.cur}")
            if self.cur.kind in ("Number", "String", "Identifier"):
                key: Node = Literal(self.cur.pos, self.cur.value)
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
        return MapLit(token.pos, pairs)

    def parse_postfix(self, node: Node) -> Node:
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
                chained = isinstance(node, Chain)
                base = node.node if isinstance(node, Chain) else node
                member = Member(prop.pos, base, Literal(prop.pos, prop.value), optional)
                if self.cur.is_("Bracket", "("):
                    member.method = True
                    node = Call(prop.pos, member, self.parse_arguments())
                else:
                    node = member
                if chained or optional:
                    node = Chain(prop.pos, node)
            elif token.value == "[" or optional:
                if optional:
                    self.advance()
                self.advance()
                if self.cur.is_("Operator", ":"):
                    raise self.unsupported("slices ([a:b])")
                index = self.parse_expression(0)
                if self.cur.is_("Operator", ":"):
                    raise self.unsupported("slices ([a:b])")
                node = Member(token.pos, node, index, optional)
                if optional:
                    node = Chain(token.pos, node)
                self.expect("Bracket", "]")
            else:
                break
        return node


def _valid_identifier(text: str) -> bool:
    return bool(text) and _is_alphabetic(text[0]) and all(_is_alphanumeric(c) for c in text[1:])
