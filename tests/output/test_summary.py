"""Job summaries within GitHub's 1 MiB per step: cut at a line, the code block closed, the
artifact named (output/summary.py, `image-factory step-summary`)."""

from __future__ import annotations

from image_factory.cli import main
from image_factory.output.summary import LIMIT, fit


def fences_balanced(text: str) -> bool:
    return sum(1 for line in text.splitlines() if line.strip().startswith("```")) % 2 == 0


def test_a_summary_that_fits_is_left_as_it_is():
    text = "## Plan\n\n```\nweb: due now\n```\n"
    assert fit(text, LIMIT, "plan") == (text, False)


def test_a_large_code_block_is_cut_at_a_line_and_closed():
    text = "## Manifests\n\n```diff\n" + "".join(f"+  line {n}: {'x' * 60}\n" for n in range(40_000)) + "```\n"
    assert len(text.encode()) > 2 * 1024 * 1024
    fitted, cut = fit(text, LIMIT, "manifests-diff")
    assert cut and len(fitted.encode()) <= LIMIT
    assert fences_balanced(fitted) and "\n```\n\n**Cut here**" in fitted
    assert "this run's artifact `manifests-diff`" in fitted
    body = fitted.split("```diff\n", 1)[1].split("\n```\n", 1)[0].splitlines()
    assert all(line.startswith("+  line ") and line.endswith("x" * 60) for line in body)  # whole lines only


def test_the_command_counts_what_the_step_wrote_before(tmp_path, monkeypatch, capsys):
    summary, outputs, source = tmp_path / "summary.md", tmp_path / "outputs", tmp_path / "plan.md"
    summary.write_text("x" * 900_000)
    source.write_text("## Rebuild plan\n\n````\n" + "web: due now\n" * 20_000 + "````\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    assert main(["step-summary", str(source), "--artifact", "rebuild-plan"]) == 0
    assert len(summary.read_bytes()) <= LIMIT and outputs.read_text() == "cut=true\n"
    assert summary.read_text().count("````") == 2  # opened, then closed where it was cut
    assert "cut to fit the job summary" in capsys.readouterr().err
    small = tmp_path / "small.md"
    small.write_text("ok\n")
    summary.write_text("")
    assert main(["step-summary", str(small), "--artifact", "x"]) == 0
    assert summary.read_text() == "ok\n" and outputs.read_text().endswith("cut=false\n")


def test_a_long_fence_still_fits():
    """A stored reason with a run of backticks makes code_block's fence longer than it: the fence
    that closes the cut block counts against the bound too."""
    from image_factory.user_text import code_block

    text = code_block("`" * 300 + "\n" + ("x" * 100 + "\n") * 20_000)
    fitted, cut = fit(text, LIMIT, "a")
    first = text.splitlines()[0]
    fence = first[: len(first) - len(first.lstrip("`"))]
    assert len(fence) > 300 and fitted.startswith(first + "\n")
    assert cut and len(fitted.encode()) <= LIMIT and f"\n{fence}\n\n**Cut here**" in fitted
