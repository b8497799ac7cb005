"""Dockerfile discovery, driven by tests/fixtures/dockerfiles/<case>/{Dockerfile,expected.json}.

A new case is a new folder: `expected.json` holds either the `bases --json` result (plus
optional `buildArgs`) or `{"error": "<the exact message>"}`, and optionally `buildkit`: where
moby/buildkit's source (a release tag, file and line) shows the behaviour the case pins down.
"""

from __future__ import annotations

import json

import pytest

from image_factory.discovery.dockerfile import find_bases
from image_factory.errors import FactoryError

from ..conftest import FIXTURES

CASES = sorted(path for path in (FIXTURES / "dockerfiles").iterdir() if path.is_dir())


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_dockerfile_case(case):
    text = (case / "Dockerfile").read_text(encoding="utf-8")
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    build_args = expected.pop("buildArgs", None)
    expected.pop("buildkit", None)
    if "error" in expected:
        with pytest.raises(FactoryError) as raised:
            find_bases(text, build_args, "Dockerfile")
        assert str(raised.value) == expected["error"]
        return
    result = find_bases(text, build_args, "Dockerfile").to_dict()
    assert result["images"] == expected["images"]
    assert result["unresolved"] == expected["unresolved"]
    if "details" in expected:
        assert result["details"] == expected["details"]


def test_every_category_has_many_cases():
    prefixes = [case.name.split("-")[0] for case in CASES]
    for category in ("from", "stages", "copy", "run", "arg", "syntax", "heredoc", "error"):
        assert prefixes.count(category) >= 2, category


def test_every_error_is_reported_at_once():
    text = "FROM Bad:1\nFROM also@bad\nFROM alpine\n"
    with pytest.raises(FactoryError) as raised:
        find_bases(text, file="svc/Dockerfile")
    assert [str(p) for p in raised.value.problems] == [
        "svc/Dockerfile:1: invalid image reference 'Bad:1': repository name must be lowercase",
        "svc/Dockerfile:2: invalid image reference 'also@bad': invalid digest 'bad'",
    ]


def test_build_arg_overrides_in_later_arg_defaults():
    text = "ARG REGISTRY=docker.io\nARG IMAGE=${REGISTRY}/library/python\nFROM ${IMAGE}:3.12\n"
    assert find_bases(text, {"REGISTRY": "mirror.example.com:5000"}).images == [
        "mirror.example.com:5000/library/python:3.12"
    ]


def test_crlf_line_endings():
    text = "ARG TAG=3.20\r\nFROM alpine:${TAG} AS base\r\nRUN <<EOF\r\nFROM evil:1\r\nEOF\r\nFROM base\r\n"
    assert find_bases(text).images == ["docker.io/library/alpine:3.20"]


def test_onbuild_triggers_run_in_every_stage_built_on_theirs_within_a_bound():
    base = "FROM alpine:3.20 AS base\n" + "ONBUILD COPY --from=ghcr.io/acme/tools:3 /t /t\n" * 100
    text = base + "".join(f"FROM base AS s{index}\n" for index in range(100))
    assert len(find_bases(text).uses) == 1 + 100 * 100
    with pytest.raises(FactoryError) as raised:
        find_bases(text + "FROM base\n", file="svc/Dockerfile")
    assert str(raised.value) == "svc/Dockerfile: refused: ONBUILD triggers would run more than 10,000 times"


def test_problems_are_reported_in_line_order():
    text = "FROM alpine:3.20 AS 1st\nCOPY --from=$TOOLS /t /t\nFROM Bad:1\n"
    with pytest.raises(FactoryError) as raised:
        find_bases(text)
    assert [problem.line for problem in raised.value.problems] == [1, 2, 3]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM alpine\nCOPY --from=² /a /b\n", "Dockerfile:2: invalid image reference '²'"),
        ("FROM ²\n", "Dockerfile:1: invalid image reference '²'"),
        ("FROM alpine\nRUN --mount=type=bind,target=/" + "a" * 200_000 + " true\n", "Dockerfile: refused: a --mount"),
    ],
    ids=["unicode-digit-stage", "unicode-digit-from", "huge-mount-spec"],
)
def test_odd_input_is_one_error_naming_the_file_never_a_traceback(text, message):
    with pytest.raises(FactoryError) as raised:
        find_bases(text)
    assert str(raised.value).startswith(message)


def test_deeply_nested_brackets_are_a_shell_form_not_a_crash():
    text = "FROM alpine\nRUN " + "[" * 100_000 + " <<EOF\nx\nEOF\n"
    assert find_bases(text).images == ["docker.io/library/alpine:latest"]


def test_global_arg_defaults_the_build_args_replace_are_reported_with_their_line():
    from image_factory.discovery.dockerfile import Overridden

    text = "ARG A=1 B=2\nARG C\nARG D=${A}x\nFROM python:${A}\n"
    found = find_bases(text, {"A": "1", "B": "3", "C": "4", "D": "5"})
    # A: the same value; C: no default; D's default expands with the build arg A
    assert found.overridden == (Overridden("B", "2", "3", 1), Overridden("D", "1x", "5", 3))
