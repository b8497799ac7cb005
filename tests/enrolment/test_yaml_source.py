"""The quick YAML path (libyaml nodes → plain data) reads exactly what PyYAML's safe loader reads."""

from __future__ import annotations

import gc

import pytest
import yaml

from image_factory.enrolment.yaml_source import parse_yaml
from image_factory.errors import FactoryError
from image_factory.speed import collector

from ..conftest import FIXTURES, REPO_ROOT

TRICKY = {
    "scalars": "a: 1\nb: 010\nc: 0x1f\nd: 1_000\ne: -3\nf: +4\ng: 1:20\nh: 1.5\ni: .inf\nj: ~\nk: null\n",
    "booleans of YAML 1.1": "a: yes\nb: No\nc: on\nd: OFF\ne: true\nf: 'yes'\n",
    "timestamps": "a: 2026-11-25\nb: 2026-11-25T05:45:13Z\nc: '2026-11-25T05:45:13Z'\n",
    "quoted and block scalars": "a: '1'\nb: \"x\\ty\"\nc: |\n  two\n  lines\nd: >-\n  folded\n  text\n",
    "anchors and merge keys": "base: &b {x: 1, y: [1, 2]}\nuse: {<<: *b, z: 3}\nagain: *b\n",
    "explicit tags": "a: !!str 12\nb: !!int '7'\nc: !!binary aGk=\nd: !!set {x, y}\n",
    "nested": "images:\n  - name: a\n    tags: [1, '2', x]\n    empty: {}\n    none: []\n",
    "keys that are not strings": "1: one\n2.5: half\nnull: nothing\n",
    "empty document": "",
    "a bare scalar": "just text\n",
}


@pytest.mark.parametrize("text", TRICKY.values(), ids=TRICKY.keys())
def test_quick_path_reads_what_pyyaml_reads(text):
    assert parse_yaml(text, "x.yaml").data == yaml.safe_load(text)


def test_every_bundled_yaml_file_reads_the_same():
    paths = [*REPO_ROOT.glob("state/**/*.yaml"), REPO_ROOT / "images.yaml", *FIXTURES.glob("config/**/*.yaml")]
    checked = 0
    for path in paths:
        text = path.read_text()
        try:
            expected = yaml.safe_load(text)
        except yaml.YAMLError:
            continue  # broken on purpose: the error tests cover it
        if "duplicate-key" in path.name:
            continue
        assert parse_yaml(text, path.name).data == expected, path
        checked += 1
    assert checked > 20


@pytest.mark.parametrize(
    ("text", "line"),
    [("a: 1\nb: 2\na: 3\n", 3), ("x:\n  - {k: 1, k: 2}\n", 2), ("when: 2026-11-25\nwhen: 2026-11-26\n", 2)],
    ids=["top level", "nested", "with a tag left to PyYAML"],
)
def test_duplicate_keys_are_refused_with_their_line(text, line):
    with pytest.raises(FactoryError) as raised:
        parse_yaml(text, "x.yaml")
    (problem,) = raised.value.problems
    assert (problem.file, problem.line) == ("x.yaml", line) and "duplicate key" in problem.message


def test_collector_is_paused_for_a_command_and_restored():
    assert gc.isenabled()
    with collector.paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector.paused():
        raise RuntimeError
    assert gc.isenabled()


def test_an_alias_bomb_is_refused_at_once_naming_the_line(tmp_path):
    """Nine levels of nine aliases: 9**9 strings if expanded. Refused, nothing built."""
    lines = ["images:", '  - &l0 "lol"']
    for level in range(1, 10):
        lines.append(f"  - &l{level} [{', '.join([f'*l{level - 1}'] * 9)}]")
    text = "\n".join(lines) + "\n"
    with pytest.raises(FactoryError) as raised:
        parse_yaml(text, "images.yaml")
    (problem,) = raised.value.problems
    assert problem.file == "images.yaml" and problem.line is not None and problem.line <= 11
    assert problem.message == "aliases expand to more than 100,000 nodes beyond the document's own: refused"


def test_anchors_within_the_budget_still_load():
    text = "defaults: &d {a: 1, b: [x, y]}\nimages:\n" + "".join(f"  - {{<<: *d, n: {i}}}\n" for i in range(2000))
    document = parse_yaml(text, "images.yaml")
    assert document.data["images"][1999] == {"a": 1, "b": ["x", "y"], "n": 1999}
