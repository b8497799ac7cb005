"""block_yaml writes state files exactly as PyYAML's block style does, or leaves them to PyYAML."""

from __future__ import annotations

import random
import string
import sys
from pathlib import Path

import pytest
import yaml

from image_factory.cli import main
from image_factory.rebuilds import events
from image_factory.state import block_yaml
from image_factory.state.store import _Dumper, load_state, render
from image_factory.timestamps import parse_time

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from scale import build_factory

TRICKY = [
    "true", "false", "null", "yes", "No", "on", "OFF", "~", "1", "-1", "0x1f", "0o7", "0777", "1e3", "1.5", ".5",
    ".inf", ".NaN", "1_000", "1:20:30", "2026-11-01", "2026-11-01T00:00:00Z", "<<", "=", "-", "--", "---", "...",
    "a:b", "a: b", "a:", "a #b", "a#b", " a", "a ", "", "y", "N", "é", "a\tb", "a\nb", "'q'", '"q"', "a\\b",
    "x" * 199, "x" * 201, "a  b", "[a]", "{a}", "a,b", "@a", "%a", "!a", "&a", "*a", "|a", ">a", "?a", "`a",
]  # fmt: skip


def pyyaml(data: dict) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000)


def test_every_state_file_of_a_fleet_with_a_history_is_written_as_pyyaml_writes_it(tmp_path):
    root = tmp_path / "fleet"
    build_factory(root, 120)
    assert main(["discover", "--root", str(root)]) == 0
    base = "docker.io/acme-mirror/base0:0.0"
    at = parse_time("2026-11-01T00:00:00Z")
    events.record_update(root, base, "sha256:" + "1" * 64, at, "freight-1")
    events.reject(root, base, "sha256:" + "1" * 64, "it broke: see https://example.com/x #12", at)
    events.expedite(root, base, "sha256:" + "2" * 64, "CVE-2026-1234", at, force=True)
    events.record_build(root, "svc-00000", None, "failure", {}, "https://github.com/acme/x/actions/runs/1", at,
                        error="tests failed: 3 of 40")  # fmt: skip
    state = load_state(root)
    written = 0
    for entry in state.entries():
        data = entry.to_dict()
        fast = block_yaml.dump(data)
        if fast is not None:
            written += 1
            assert fast == pyyaml(data), entry.path
        assert render(data) == (root / entry.path).read_text()
    assert written >= len(state.entries()) - 3  # only the files with unusual text are PyYAML's


def test_generated_documents_with_tricky_strings_match_or_are_left_to_pyyaml():
    chance = random.Random(16)
    characters = string.ascii_letters + string.digits + " _./:@+=,()~<>;*&!%$?^`|[]{}-#'\"\\\té"
    fast = 0
    for _ in range(20000):
        pick = chance.random()
        if pick < 0.4:
            text = chance.choice(TRICKY)
        elif pick < 0.6:
            text = chance.choice(TRICKY) + chance.choice(characters) + chance.choice(TRICKY)
        else:
            text = "".join(chance.choice(characters) for _ in range(chance.randint(0, 14)))
        data = {
            "a": text,
            "list": [text, {"k": text, "inner": [text], text or "x": 1}],
            "nested": {"x": {"y": text}},
            "empty": [],
            "none": {},
            "flag": True,
            "count": 5,
            "nothing": None,
        }
        written = block_yaml.dump(data)
        if written is not None:
            fast += 1
            assert written == pyyaml(data), repr(text)
    assert fast > 5000  # thousands of the documents are written here, not by PyYAML


def test_what_it_is_unsure_of_is_left_to_pyyaml():
    unsure = [{"a": [[1]]}, {"a": 1.5}, {1: "a"}, {"a": "x" * 201}, {"x" * 121: 1}, {"a": "é"}, {"a": "a\nb"}, {}]
    for data in unsure:
        assert block_yaml.dump(data) is None, data


@pytest.mark.slow
def test_what_it_reads_is_what_pyyaml_reads_or_it_leaves_the_text_to_pyyaml(tmp_path):
    chance = random.Random(17)
    characters = string.ascii_letters + string.digits + " _./:@+=,()~<>;*&!%$?^`|[]{}-#'\"\\\té"
    read = 0
    for _ in range(5000):
        text = (
            chance.choice(TRICKY)
            if chance.random() < 0.5
            else "".join(chance.choice(characters) for _ in range(chance.randint(0, 10)))
        )
        data = {"a": text, "list": [text, {"k": text, "inner": [text, {}], "n": None}], "m": {"x": {"y": 3}}, "e": []}
        for written in (block_yaml.dump(data), pyyaml(data), yaml.dump(data, default_flow_style=True)):
            if written is None:
                continue
            loaded = block_yaml.load(written)
            if loaded is not None:
                read += 1
                assert loaded == yaml.safe_load(written) == data, written
                assert block_yaml.dump(loaded) == written  # only what dump writes is read
    assert read > 2000
    # texts no dump writes: another indentation, comments, flow style, anchors, a missing newline
    edited = [
        "a: 1\n  b: 2\n", "a:\n    b: 1\n", "a: 1 # note\n", "a: [1, 2]\n", "a: &x 1\nb: *x\n", "a: 1", "a: 01\n",
        "a: 1\na: 2\n", "- 1\n", "a:\n- 1\n -2\n", "a: 'it''s'\n", "a: \"q\"\n", "? a\n: 1\n", "a: 1.0\n", "a: yes\n",
    ]  # fmt: skip
    for text in edited:
        assert block_yaml.load(text) is None, text


def test_a_state_file_edited_by_hand_is_read_by_pyyaml_with_its_lines(tmp_path):
    root = tmp_path / "fleet"
    build_factory(root, 8)
    assert main(["discover", "--root", str(root)]) == 0
    path = root / "state/images/svc-00001.yaml"
    path.write_text(path.read_text().replace("autoRebuild: true", "autoRebuild: true  # kept\n  colour: red"))
    code = main(["validate", "--root", str(root)])
    assert code == 1  # the unknown field, named with its line by the careful parse


@pytest.mark.slow
def test_plain_words_are_strings_exactly_where_pyyaml_says_so():
    """block_yaml settles a word of letters, digits, `-` and `_` that starts with a letter without
    PyYAML's resolver (only YAML 1.1's bool and null words read as something else): checked on
    every casing of those words and on generated words."""
    chance = random.Random(7)
    words = {"y", "n", "Y", "N", "yes", "nO", "oN", "Off", "Null", "NuLL", "e10", "E1", "inf", "nan", "NaN", "a-1"}
    for word in ("yes", "no", "true", "false", "on", "off", "null"):
        words |= {"".join(c.upper() if chance.random() < 0.5 else c for c in word) for _ in range(20)}
    tail = string.ascii_letters + string.digits + "-_"
    words |= {chance.choice(string.ascii_letters) + "".join(chance.choices(tail, k=chance.randint(0, 8)))
              for _ in range(20000)}  # fmt: skip
    for word in sorted(words):
        assert block_yaml._WORD.fullmatch(word)
        assert block_yaml.dump({"k": word}) == pyyaml({"k": word}), word
        assert block_yaml.load(pyyaml({"k": word})) == yaml.safe_load(pyyaml({"k": word})), word
        assert block_yaml.load(f"k: {word}\n") in (None, yaml.safe_load(f"k: {word}\n")), word


def test_runs_of_records_read_as_pyyaml_reads_them_whatever_breaks_the_run():
    """A list of mappings with the same keys (a base's dependents) is read a record at a time:
    an item with another key, one key fewer, other keys' order, a nested value or an edited line
    anywhere in the run must read as PyYAML reads it, or be left to PyYAML."""
    chance = random.Random(18)
    values = ["svc-1", "null", "'sha256:1'", "[]", "{}", "true", "'7'", "x y", "a: b"]
    checked = 0
    for _ in range(3000):
        items = []
        for _ in range(chance.randint(1, 6)):
            item = {"image": chance.choice(["svc-1", "svc-2", "web"]), "pinnedDigest": chance.choice([None, "d"])}
            roll = chance.random()
            if roll < 0.1:
                item["extra"] = 1
            elif roll < 0.2:
                item.pop("pinnedDigest")
            elif roll < 0.3:
                item = dict(reversed(item.items()))
            elif roll < 0.4:
                item["pinnedDigest"] = {"nested": [1]}
            items.append(item)
        text = pyyaml({"dependents": items, "after": {"k": 1}})
        lines = text.split("\n")
        if chance.random() < 0.5:  # an edited line
            at = chance.randrange(len(lines) - 1)
            head, _, _ = lines[at].partition(": ")
            lines[at] = f"{head}: {chance.choice(values)}" if ": " in lines[at] else lines[at] + " x"
        text = "\n".join(lines)
        loaded = block_yaml.load(text)
        if loaded is not None:
            checked += 1
            assert loaded == yaml.safe_load(text), text
    assert checked > 1000
