"""Optuna workers in separate, supervised processes on one shared study (RDB or journal storage).

Each worker loads the study with its own sampler seed (tuning.worker_seed: the seed, the launch
and the worker index) and runs its share of the trials; the storage hands a queued trial (the
first trial, a retried one) to exactly one of them, and TPE's constant liar keeps concurrent
proposals apart. The processes are spawned, not forked: LightGBM's OpenMP runtime and SQLAlchemy's
pools do not survive a fork.

Why one Process per worker and not a pool: a worker killed by a signal (the OOM killer, a
preempted node) breaks a ProcessPoolExecutor, which then terminates the surviving workers too and
leaves the dead one's trial RUNNING until a later launch's heartbeat fails it. Here the supervisor
(the calling process) waits on every worker; when one dies it fails the trial the worker was
running at once (each trial carries its worker's tag, launch.worker, from its first line), queues
the trial's parameters again (RetryHeartbeatStaleTrialCallback's rule and retry limit), and starts
a replacement with a fresh sampler seed for what the dead worker had left, while the others go on.
The launch ends when every worker has finished its share, the stop rule ended the study, or the
time limit is reached. A crash loop ends after config.TUNING.max_worker_replacements replacements.

This supervision replaces the heartbeat for the workers of one launch on every storage, so also on
journal storages, which have no heartbeat in Optuna 5. What it cannot see is its own death (the
whole host gone): on RDB storages the heartbeat still fails such trials when a later launch runs;
on a journal storage they stay RUNNING, never count as tried (n_trials_tried counts complete and
pruned trials) and are reported as lost by nobody; run many hosts on Postgres when hosts may die.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import signal
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from mlplatform import config
from mlplatform.training.study_storage import make_storage, retry_callback
from mlplatform.training.tuning import (
    WorkerSpec,
    make_pruner,
    optimize_trials,
)

logger = logging.getLogger(__name__)


def shares(n_trials: int, workers: int) -> list[int]:
    """`n_trials` split over at most `workers` workers as evenly as possible, none empty."""
    base, extra = divmod(int(n_trials), int(workers))
    return [base + (1 if i < extra else 0) for i in range(int(workers)) if base or i < extra]


def run_worker(spec: WorkerSpec) -> None:
    """One worker process: load the study with this worker's sampler seed, run its share."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=spec.study.name,
        storage=make_storage(
            spec.study.storage_url, heartbeat_interval_s=spec.study.heartbeat_interval_s
        ),
        sampler=spec.sampler(),
        pruner=make_pruner(spec.study.pruner),
    )
    optimize_trials(study, spec, spec.fold_data(), [])


@dataclasses.dataclass
class FanOut:
    """What became of the workers of one launch."""

    lost: list[int] = dataclasses.field(default_factory=list)  # trials failed with their worker
    deaths: list[str] = dataclasses.field(default_factory=list)  # how each dead worker ended
    replaced: int = 0  # workers started in place of dead ones
    stagnated: bool = False  # a worker stopped early because the stop rule said so


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"


class _Supervisor:
    """Starts the workers of one launch, waits on them, and buries and replaces the dead."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.study = optuna.load_study(
            study_name=spec.study.name,
            storage=make_storage(
                spec.study.storage_url, heartbeat_interval_s=spec.study.heartbeat_interval_s
            ),
        )
        self.deadline = time.monotonic() + spec.study.timeout_s
        self.context = multiprocessing.get_context("spawn")
        self.live: dict[Any, tuple[BaseProcess, WorkerSpec]] = {}  # by the process's sentinel
        self.next_worker = 0
        self.report = FanOut()
        self.retry = retry_callback()
        self.stop_rule = spec.study.stop_rule()
        # RUNNING trials seen without a worker tag when a worker died: its trial, if it died in
        # the instant between Optuna creating the trial and the objective tagging it.
        self.untagged: set[int] = set()

    def start(self, n_trials: int) -> None:
        left_s = self.deadline - time.monotonic()
        study = dataclasses.replace(self.spec.study, timeout_s=left_s)
        spec = dataclasses.replace(
            self.spec, worker=self.next_worker, n_trials=n_trials, study=study
        )
        self.next_worker += 1
        process = self.context.Process(
            target=run_worker, args=(spec,), name=f"optuna-worker-{spec.tag}", daemon=True
        )
        process.start()
        self.live[process.sentinel] = (process, spec)

    def _running(self) -> list[optuna.trial.FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))

    def _fail(self, trial: optuna.trial.FrozenTrial, retry: bool) -> None:
        """Fail a trial whose process is gone, and queue its parameters again if `retry`."""
        try:
            self.study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except UpdateFinishedTrialError:  # someone else (a heartbeat) failed it first
            return
        self.report.lost.append(trial.number)
        if retry:
            self.retry(self.study, self.study._storage.get_trial(trial._trial_id))

    def _done_by(self, spec: WorkerSpec) -> int:
        """Trials the worker finished itself (complete, pruned, or failed by raising)."""
        return sum(
            t.user_attrs.get("worker") == spec.tag
            and t.state.is_finished()
            and t.number not in self.report.lost
            for t in self.study.get_trials(deepcopy=False)
        )

    def bury(self, process: BaseProcess, spec: WorkerSpec) -> None:
        """Fail the dead worker's trial, re-queue it, and replace the worker if work is left."""
        death = f"worker {spec.tag} {_how_it_ended(process.exitcode)}"
        self.report.deaths.append(death)
        live = {s.tag for _, s in self.live.values()}
        for trial in self._running():
            owner = trial.user_attrs.get("worker")
            if owner == spec.tag:
                self._fail(trial, retry=True)
            elif owner is None:
                self.untagged.add(trial._trial_id)
            elif owner.startswith(f"{spec.launch}.") and owner not in live:
                self._fail(trial, retry=True)  # a retried trial, picked up by `spec` just now
        left = spec.n_trials - self._done_by(spec)
        logger.warning("tuning %s; %d of its %d trials left", death, left, spec.n_trials)
        if left <= 0 or time.monotonic() >= self.deadline:
            return
        if self.stop_rule is not None and self.stop_rule.should_stop(self.study):
            self.report.stagnated = True
            return
        if self.report.replaced >= config.TUNING.max_worker_replacements:
            logger.warning("not replacing worker %s: the launch replaced enough", spec.tag)
            return
        self.report.replaced += 1
        self.start(left)

    def finished_cleanly(self, spec: WorkerSpec) -> None:
        """A worker that left before its share was done and before the time limit was stopped
        by the stop rule."""
        if self._done_by(spec) < spec.n_trials and time.monotonic() < self.deadline:
            self.report.stagnated = True

    def run(self, workers: int) -> FanOut:
        for n in shares(self.spec.n_trials, workers):
            self.start(n)
        try:
            while self.live:
                for sentinel in wait(list(self.live)):
                    process, spec = self.live.pop(sentinel)
                    process.join()
                    if process.exitcode == 0:
                        self.finished_cleanly(spec)
                    else:
                        self.bury(process, spec)
        finally:
            for process, spec in self.live.values():  # only when this process is interrupted
                process.kill()
                process.join()
                for trial in self._running():
                    if trial.user_attrs.get("worker") == spec.tag:
                        self._fail(trial, retry=False)
            # Every worker of the launch is gone: an untagged trial seen at a death that is still
            # untagged and RUNNING belonged to the dead worker.
            for trial in self._running():
                if trial._trial_id in self.untagged and "worker" not in trial.user_attrs:
                    self._fail(trial, retry=False)
        return self.report


def fan_out(spec: WorkerSpec, workers: int) -> FanOut:
    """Run `spec.n_trials` over `workers` supervised, spawned processes (see the module)."""
    return _Supervisor(spec).run(workers)
