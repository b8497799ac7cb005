"""A job summary that fits GitHub's bound. Pure.

GitHub takes at most 1 MiB from each step's $GITHUB_STEP_SUMMARY and drops all of it past that
("$GITHUB_STEP_SUMMARY upload aborted, supports content up to a size of 1024k": the runner's
annotation; docs.github.com, "Workflow commands for GitHub Actions", Adding a job summary). A
plan of a whole fleet or a manifest diff can be larger: cut it at a line, close the code block it
was in, and say where the whole text is.
"""

from __future__ import annotations

LIMIT = 1024 * 1024  # bytes per step


def fit(text: str, room: int, artifact: str) -> tuple[str, bool]:
    """`text` as it may be added to a summary that has `room` bytes left; whether it was cut."""
    data = text.encode()
    if len(data) <= room:
        return text, False
    note = (
        f"\n**Cut here**: a job summary holds at most 1 MiB, and this one would have held {len(data):,} bytes. "
        f"The whole text is in this run's artifact `{artifact}`.\n"
    )
    longest = max((len(line.strip()) for line in text.splitlines() if line.strip()[:3] in ("```", "~~~")), default=0)
    budget = room - len(note.encode()) - longest - 1  # the fence that may close the cut block
    if budget <= 0:
        return note.lstrip(), True
    kept: list[str] = []
    used, fence = 0, None
    for line in text.splitlines(keepends=True):
        size = len(line.encode())
        if used + size > budget:
            break
        kept.append(line)
        used += size
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            marker = stripped[:3]
            run = len(stripped) - len(stripped.lstrip(marker[0]))
            if fence is None:
                fence = stripped[:run]
            elif stripped == fence[0] * len(stripped) and len(stripped) >= len(fence):
                fence = None
    ending = "" if not kept or kept[-1].endswith("\n") else "\n"
    closing = f"{fence}\n" if fence else ""
    return "".join(kept) + ending + closing + note, True
