"""Kargo expressions the generator writes, and the refusal of user text that could make others.

Kargo evaluates `${{ … }}` and `${% … %}` in step configs, `if`s and verification args with the
Stage's secrets in reach (docs/kargo.md §1). The generator writes its own expressions; user text
(names, references, paths, branches) that carried a delimiter into a manifest would be run by
Kargo, or end one of the generator's expressions early. `validate` refuses such text in
images.yaml and state; the generator refuses it again on everything it reads (defence in depth).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from image_factory.enrolment.expression_guard import delimiter_in


@dataclass(frozen=True)
class Expr:
    """Code of an expr-lang expression (without delimiters), written by the generator itself."""

    code: str

    def template(self) -> str:
        """As a whole config value (Kargo then coerces the result: right for digests, names and
        tokens, never for a tag such as `7`, which would become a number)."""
        return "${{ " + self.code + " }}"


def image_from(repo_url: str, field: str) -> Expr:
    """`Tag` or `Digest` of the Freight's image from `repo_url` (exactly the Warehouse's repoURL)."""
    return Expr(f"imageFrom({string(repo_url)}).{field}")


def secret(name: str, key: str) -> Expr:
    return Expr(f"secret({string(name)}).{key}")


TARGET_FREIGHT = Expr("ctx.targetFreight.name")


def json_body(payload: dict) -> str:
    """A JSON request body that stays a string after Kargo's evaluation.

    Kargo coerces a whole evaluated value that parses as JSON into an object, which the http
    step's `body` (a string) refuses; `quote()` of a map marshals it to JSON wrapped in quotes,
    which Kargo strips and keeps as a string. The map literal never holds `}}`: Kargo ends an
    expression at the first one.
    """
    return Expr(f"quote({_literal(payload)})").template()


def string(value: str) -> str:
    """An expr-lang string literal of user text, refused when it holds expression delimiters.
    Single-quoted (as Kargo's docs write them) unless the text needs escapes."""
    refuse_delimiters(value)
    if _PLAIN.fullmatch(value):
        return f"'{value}'"
    return json.dumps(value, ensure_ascii=False)


_PLAIN = re.compile(r"[^'\\\x00-\x1f]*")


def _literal(value: object) -> str:
    if isinstance(value, Expr):
        return value.code
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{string(key)}: {_literal(item)}" for key, item in value.items()) + " }"
    if isinstance(value, str):
        return string(value)
    raise TypeError(f"no expr-lang literal for {value!r}")


def refuse_delimiters(value: str) -> None:
    found = delimiter_in(value)
    if found is not None and found.startswith("U+"):
        raise ValueError(f"{value!r} holds {found}, which Kargo's YAML read-back of a step's configuration refuses")
    if found is not None:
        raise ValueError(f"{value!r} holds {found!r}, which Kargo would read as an expression delimiter")


def refuse_in(value: object) -> None:
    """`refuse_delimiters` on every string of plain data (dicts, lists, strings)."""
    if isinstance(value, dict):
        for key, item in value.items():
            refuse_in(key)
            refuse_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            refuse_in(item)
    elif isinstance(value, str):
        refuse_delimiters(value)
