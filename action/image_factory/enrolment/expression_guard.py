"""Refuses Kargo expression delimiters in user text.

Strings from images.yaml and state reach the generated Stages (URLs, request bodies, messages),
where Kargo evaluates `${{ … }}` and `${% … %}` with the Stage's secrets in reach: a workflow
name ending in `${{ secret('image-factory-github').token }}` would send the token away. A `}}`
or `%}` would end one of the generator's own expressions early. None of them belongs in an
image name, a path or a branch, so any string holding one is refused where it was written.
"""

from __future__ import annotations

from image_factory.enrolment.yaml_source import Path_, YamlDocument
from image_factory.errors import Problem

DELIMITERS = ("${{", "${%", "}}", "%}")


def delimiter_in(text: str) -> str | None:
    """The first expression delimiter `text` holds, if any; or the first character Kargo cannot
    read back (`unprintable_in`), named as U+XXXX."""
    found = next((token for token in DELIMITERS if token in text), None)
    if found is None and (char := unprintable_in(text)) is not None:
        return f"U+{ord(char):04X}"
    return found


def unprintable_in(text: str) -> str | None:
    """The first character outside YAML's printable set (YAML 1.2, 5.1), tab and line breaks
    aside. Kargo turns a step's evaluated configuration into JSON and reads it back with yaml.v3
    (pkg/promotion/evaluator.go:316-319, v1.11.2); yaml.v3 refuses such a character ("control
    characters are not allowed") and Kargo then runs the step with no configuration at all: it
    fails with "given: null" and sends nothing. U+007F, U+0080-U+009F and U+FFFE are the ones JSON
    leaves as they are."""
    for char in text:
        code = ord(char)
        if code < 0x20 and char not in "\t\n\r":
            return char
        if (0x7F <= code <= 0x9F and code != 0x85) or 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF):
            return char
    return None


def with_expression_problems(document: YamlDocument, problems: list[Problem]) -> list[Problem]:
    """`problems` (the schema's) and the strings holding a delimiter, one problem per field: the
    delimiter is the one worth reporting."""
    found = expression_problems(document)
    if not found:
        return problems
    fields = {problem.field for problem in found}
    kept = [problem for problem in problems if problem.field not in fields]
    return sorted(kept + found, key=lambda problem: problem.line or 0)


def expression_problems(document: YamlDocument) -> list[Problem]:
    """One problem per string (key or value) of `document` that holds an expression delimiter."""
    text = document.text
    # Nearly every file has no `$`, `}}`, `%}`, no escape that could make one and no unprintable
    # character: skip the walk.
    if text is not None and not any(mark in text for mark in ("$", "\\", "}}", "%}")) and unprintable_in(text) is None:
        return []
    problems: list[Problem] = []
    _walk(document, document.data, (), problems)
    return problems


def _walk(document: YamlDocument, value: object, path: Path_, problems: list[Problem]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _check(document, key, (*path, key), problems)
            _walk(document, item, (*path, key), problems)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(document, item, (*path, index), problems)
    else:
        _check(document, value, path, problems)


def _check(document: YamlDocument, value: object, path: Path_, problems: list[Problem]) -> None:
    if isinstance(value, str) and (token := delimiter_in(value)) is not None:
        why = (
            "Kargo reads a step's configuration back as YAML, which refuses it, and runs the step with none"
            if token.startswith("U+")
            else "it is a Kargo expression delimiter"
        )
        shown = token if token.startswith("U+") else repr(token)
        problems.append(document.problem(path, f"{shown} is not allowed: {why}, and this text reaches the manifests"))
