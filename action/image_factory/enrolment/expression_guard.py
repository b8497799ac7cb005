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
    """The first expression delimiter `text` holds, if any."""
    return next((token for token in DELIMITERS if token in text), None)


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
    # Nearly every file has no `$`, `}}`, `%}` nor an escape that could make one: skip the walk.
    if text is not None and not any(mark in text for mark in ("$", "\\", "}}", "%}")):
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
        problems.append(
            document.problem(
                path,
                f"{token!r} is not allowed: it is a Kargo expression delimiter, and this text reaches the manifests",
            )
        )
