"""GitHub Actions' concurrency groups, as GitHub documents them, driving a workflow's jobs.

docs.github.com, "Control the concurrency of workflows and jobs" (how-tos/write-workflows/
choose-when-workflows-run/control-workflow-concurrency), and the changelog of 2026-05-07
("GitHub Actions concurrency groups now allow larger queues"):
- "there can be at most one running job or workflow in a concurrency group at any time";
- "When a concurrent job or workflow is queued, if another job or workflow using the same
  concurrency group in the repository is in progress, the queued job or workflow will be
  pending. By default, any existing pending job or workflow in the same concurrency group will
  be canceled and the new queued job or workflow will take its place" (`queue: single`);
- `queue: max` lets "up to 100 queued jobs or workflow runs per concurrency group" wait; when
  the queue is full, additional jobs or workflow runs are cancelled;
- "order is not guaranteed for jobs or runs that queue within 5 minutes of each other": the
  model starts a pending one chosen at random.
Jobs without a group start as soon as their `needs` finished (runners are not the limit here:
a queued job waits for a runner, it is not cancelled). A job whose `if` has `!cancelled()` or
`always()` runs after its needs whatever their result; a cancelled run starts no job.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import yaml

QUEUE_MAX = 100


@dataclass(frozen=True)
class JobSpec:
    name: str
    needs: tuple[str, ...]
    group: str | None
    queue: str  # single | max
    skipped: bool  # its `if` is false for a repository_dispatch on the default branch


@dataclass(frozen=True)
class WorkflowSpec:
    jobs: dict[str, JobSpec]
    group: str | None
    queue: str

    @classmethod
    def parse(cls, text: str) -> WorkflowSpec:
        workflow = yaml.safe_load(text)
        group, queue = _concurrency(workflow.get("concurrency"))
        jobs = {}
        for name, job in workflow["jobs"].items():
            needs = job.get("needs", ())
            job_group, job_queue = _concurrency(job.get("concurrency"))
            condition = str(job.get("if", ""))
            skipped = "github.ref !=" in condition  # the job for other branches
            jobs[name] = JobSpec(
                name, (needs,) if isinstance(needs, str) else tuple(needs), job_group, job_queue, skipped
            )
        return cls(jobs, group, queue)


def _concurrency(value) -> tuple[str | None, str]:
    if value is None:
        return None, "single"
    if isinstance(value, str):
        return value, "single"
    assert not value.get("cancel-in-progress"), "the model has no cancel-in-progress"
    return value["group"], value.get("queue", "single")


@dataclass
class Run:
    number: int
    event: dict
    cancelled: bool = False
    done: set[str] = field(default_factory=set)
    started: set[str] = field(default_factory=set)


@dataclass
class Outcome:
    runs: int = 0
    cancelled_runs: int = 0
    cancelled_jobs: dict[str, int] = field(default_factory=dict)
    finished_jobs: dict[str, int] = field(default_factory=dict)


class Group:
    """One concurrency group: at most one running member, pending ones as `queue` says."""

    def __init__(self, queue: str, rng: random.Random):
        self.queue, self.rng = queue, rng
        self.running: object | None = None
        self.pending: list = []

    def admit(self, member) -> tuple[bool, list]:
        """(start it now, the members this cancels)."""
        if self.running is None:
            self.running = member
            return True, []
        if self.queue == "max":
            if len(self.pending) >= QUEUE_MAX:
                return False, [member]
            self.pending.append(member)
            return False, []
        cancelled, self.pending = self.pending, [member]
        return False, cancelled

    def release(self):
        """The running member finished: a pending one (any of them) starts, if there is one."""
        self.running = None
        if self.pending:
            self.running = self.pending.pop(self.rng.randrange(len(self.pending)))
        return self.running


def simulate(
    spec: WorkflowSpec,
    arrivals: list[tuple[float, dict]],
    effects: dict[str, Callable[[Run, str], None]],
    duration: Callable[[str, Run], float],
    seed: int = 0,
) -> Outcome:
    """Run a workflow for each event at its time. `effects[job](run, "start" | "finish")` does the
    job's work; `duration(job, run)` is how long it takes. Returns what GitHub did."""
    rng = random.Random(seed)
    outcome = Outcome()
    queue: list = []
    order = itertools.count()
    groups: dict[str, Group] = {}

    def group(name: str, kind: str) -> Group:
        return groups.setdefault(name, Group(kind, rng))

    def at(time: float, action: Callable[[float], None]) -> None:
        heapq.heappush(queue, (time, next(order), action))

    def start_run(run: Run, now: float) -> None:
        for job in spec.jobs.values():
            if not job.needs:
                ready(run, job, now)

    def ready(run: Run, job: JobSpec, now: float) -> None:
        if job.skipped:
            run.done.add(job.name)
            after(run, job, now)
            return
        if job.group is None:
            begin(run, job, now)
            return
        starts, cancelled = group(job.group, job.queue).admit((run, job))
        for other_run, other_job in cancelled:
            outcome.cancelled_jobs[other_job.name] = outcome.cancelled_jobs.get(other_job.name, 0) + 1
            other_run.done.add(other_job.name)
        if starts:
            begin(run, job, now)

    def begin(run: Run, job: JobSpec, now: float) -> None:
        run.started.add(job.name)
        effects.get(job.name, lambda *_: None)(run, "start")
        at(now + duration(job.name, run), lambda later: finish(run, job, later))

    def finish(run: Run, job: JobSpec, now: float) -> None:
        effects.get(job.name, lambda *_: None)(run, "finish")
        outcome.finished_jobs[job.name] = outcome.finished_jobs.get(job.name, 0) + 1
        run.done.add(job.name)
        if job.group is not None:
            following = groups[job.group].release()
            if following is not None:
                begin(*following, now)
        after(run, job, now)
        if spec.group is not None and run.done >= set(spec.jobs):
            following = groups[spec.group].release()
            if following is not None:
                start_run(following, now)

    def after(run: Run, finished: JobSpec, now: float) -> None:
        for job in spec.jobs.values():
            if finished.name in job.needs and job.name not in run.started and all(n in run.done for n in job.needs):
                ready(run, job, now)

    def arrive(event: dict, now: float) -> None:
        run = Run(outcome.runs, event)
        outcome.runs += 1
        if spec.group is None:
            start_run(run, now)
            return
        starts, cancelled = group(spec.group, spec.queue).admit(run)
        for other in cancelled:
            other.cancelled = True
            outcome.cancelled_runs += 1
        if starts:
            start_run(run, now)

    for time, event in arrivals:
        at(time, lambda now, event=event: arrive(event, now))
    while queue:
        time, _, action = heapq.heappop(queue)
        action(time)
    return outcome
