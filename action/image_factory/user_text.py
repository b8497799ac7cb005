"""Free text people give the tool (reasons, errors), made safe to store and to print.

The tool's output is read by GitHub Actions, which runs any line that starts with `::` (leading
spaces ignored) as a workflow command: a reason holding a newline and `::add-mask::` or
`::stop-commands::` would be obeyed. Such text is kept on one line, and never starts one.
"""

from __future__ import annotations

import re

# Every control character, and the Unicode line and paragraph separators.
_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
# Unicode's bidirectional formatting characters: shown raw, an override makes a reason read
# otherwise than it is written (CVE-2021-42574, "Trojan Source").
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """`text` with each bidirectional formatting character written out as `<U+202E>`."""
    return _BIDI.sub(lambda match: f"<U+{ord(match.group()):04X}>", text)


def one_line(text: str) -> str:
    """`text` with every line break or control character run turned into one space and every
    bidirectional formatting character written out (`visible`); a text that would start with
    `::` is marked so that it cannot read as a workflow command."""
    flat = visible(_BREAKS.sub(" ", text)).strip()
    return f"» {flat}" if flat.startswith("::") else flat


def command_property(text: str) -> str:
    """A workflow command's property value (`file=`…), escaped as GitHub's toolkit does."""
    return command_data(text).replace(":", "%3A").replace(",", "%2C")


def command_data(text: str) -> str:
    """A workflow command's message, escaped as GitHub's toolkit does."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


_MARKDOWN = re.compile(r"([\\`*_\[\]|#!~])")


def markdown_text(text: str) -> str:
    """User text inside Markdown (a PR body, a job summary): one line, no HTML, no markup, no
    table-cell break."""
    flat = one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN.sub(r"\\\1", flat)


def code_block(text: str) -> str:
    """`text` as a Markdown code block nothing in it can close: the fence is longer than any
    run of backticks in the text, so stored reasons are shown, never rendered (no links, images,
    mentions or HTML in a job summary)."""
    text = visible(text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text.rstrip()}\n{fence}"


def code_span(text: str, *, table_cell: bool = False) -> str:
    """`text` on one line as a Markdown code span nothing in it can close: shown as written, so
    no link, image, HTML, `@mention` or `#123` reference is made of it (GitHub renders neither
    inside code). In a table cell a `|` would end the cell even inside the span: it is escaped."""
    flat = one_line(text)
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") or not flat.strip() else ""
    span = f"{fence}{pad}{flat}{pad}{fence}"
    return span.replace("|", "\\|") if table_cell else span
