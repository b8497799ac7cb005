"""BuildKit's shell word lexer (frontend/dockerfile/shell/lex.go), for FROM operands, ARG defaults and mounts."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_EXPANSION = 64 * 1024  # characters one expanded value may have
MAX_NESTING = 64  # `${A:-${B:-…}}` levels
MAX_TRIGGER_RUNS = 10_000  # ONBUILD instructions run, over all the stages built on a stage


class ExpansionTooLarge(Exception):
    """An ARG value, reference or ONBUILD triggers that expand past the bounds: a hostile or broken Dockerfile."""


class Malformed:
    """What `Walk.expand` returns for a word the lexer refuses (the problem is recorded)."""


MALFORMED = Malformed()


class LexError(Exception):
    """A word the shell lexer refuses, in BuildKit's words (an unclosed quote, `${}`)."""


def lex(text: str, args: dict[str, str | None], escape: str = "\\", quotes: bool = True) -> str | None:
    """`text` as BuildKit's shell lexer reads one word (frontend/dockerfile/shell/lex.go).

    Quotes are removed (`'…'` literal, `"…"` expanded), the escape character escapes the next
    character, and `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:+a}`, `${VAR+a}`, `${VAR:?m}`
    are expanded. Returns None when the result depends on an ARG that has no value, or on a
    pattern operator (`#`, `%`, `/`) not evaluated here. With `quotes=False` (ARG defaults,
    already unquoted), quotes are plain text and the escape character only escapes `$`.
    Raises LexError for a malformed word, ExpansionTooLarge past MAX_NESTING levels or
    MAX_EXPANSION characters (ARGs that double each other grow exponentially).
    """
    if "$" not in text and not (quotes and ("'" in text or '"' in text or escape in text)):
        return text  # nothing to expand, unquote or unescape: most words
    return _Lexer(text, args, escape, quotes).word(None, 0)


@dataclass
class _Lexer:
    text: str
    args: dict[str, str | None]
    escape: str
    quotes: bool
    pos: int = 0

    def peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def word(self, stop: str | None, depth: int) -> str | None:
        """lex.go processStopOn: up to `stop` (consumed) or the end."""
        if depth > MAX_NESTING:
            raise ExpansionTooLarge(f"variable references nested more than {MAX_NESTING} deep")
        out = _Buffer()
        while (char := self.peek()) is not None:
            if char == stop:
                self.pos += 1
                return out.text()
            if char == "$":
                piece = self.dollar(depth)
            elif self.quotes and char == "'":
                piece = self.single_quoted()
            elif self.quotes and char == '"':
                piece = self.double_quoted(depth)
            else:
                self.pos += 1
                if char == self.escape and (self.quotes or self.peek() == "$"):
                    if self.peek() is None:
                        break  # an escape at the end is dropped
                    char = self.text[self.pos]
                    self.pos += 1
                piece = char
            out.add(piece)
        if stop is not None:
            raise LexError(f"unexpected end of statement while looking for matching {stop}")
        return out.text()

    def single_quoted(self) -> str:
        end = self.text.find("'", self.pos + 1)
        if end < 0:
            raise LexError("unexpected end of statement while looking for matching single-quote")
        piece, self.pos = self.text[self.pos + 1 : end], end + 1
        return piece

    def double_quoted(self, depth: int) -> str | None:
        self.pos += 1
        out = _Buffer()
        while (char := self.peek()) != '"':
            if char is None:
                raise LexError("unexpected end of statement while looking for matching double-quote")
            if char == "$":
                out.add(self.dollar(depth))
                continue
            self.pos += 1
            if char == self.escape and self.peek() in ('"', "$", self.escape):
                char = self.text[self.pos]
                self.pos += 1
            out.add(char)
        self.pos += 1
        return out.text()

    def dollar(self, depth: int) -> str | None:
        """lex.go processDollar, without the pattern operators."""
        self.pos += 1
        if self.peek() != "{":
            name = self.name()
            return self.args.get(name) if name else "$"
        self.pos += 1
        if self.peek() is None:
            raise LexError("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise LexError("syntax error: bad substitution")
        name = self.name()
        operator = self.peek()
        self.pos += 1
        if operator is None:
            raise LexError("syntax error: missing '}'")
        if operator == "}":
            return self.args.get(name)
        colon = operator == ":"
        if colon:
            operator = self.peek()
            self.pos += 1
        if operator not in ("-", "+", "?", "#", "%", "/") or (colon and operator in "#%/"):
            raise LexError(f"unsupported modifier ({':' if colon else ''}{operator or ''}) in substitution")
        try:
            word = self.word("}", depth + 1)
        except LexError:
            if self.peek() is None:
                raise LexError("syntax error: missing '}'") from None
            raise
        if operator in "#%/":
            return None
        value = self.args.get(name)
        present = bool(value) if colon else value is not None
        if operator == "-":
            return value if present else word
        if operator == "+":
            return word if present else ""
        return value if present else None  # `?`: an error in BuildKit, unresolved here

    def name(self) -> str:
        """lex.go processName: digits, one special parameter, or letters, digits and `_`."""
        start = self.pos
        char = self.peek()
        if char is not None and char.isdigit():
            while (char := self.peek()) is not None and char.isdigit():
                self.pos += 1
        elif char is not None and char in "@*#?-$!0":
            self.pos += 1
        else:
            while (char := self.peek()) is not None and (char.isalnum() or char == "_"):
                self.pos += 1
        return self.text[start : self.pos]


@dataclass
class _Buffer:
    """The pieces of a word; unresolved once any piece is (the rest of the word is still read)."""

    parts: list[str] = field(default_factory=list)
    size: int = 0
    resolved: bool = True

    def add(self, piece: str | None) -> None:
        if piece is None:
            self.resolved = False
            return
        self.parts.append(piece)
        self.size += len(piece)
        if self.size > MAX_EXPANSION:
            raise ExpansionTooLarge(f"a value expands past {MAX_EXPANSION:,} characters")

    def text(self) -> str | None:
        return "".join(self.parts) if self.resolved else None
