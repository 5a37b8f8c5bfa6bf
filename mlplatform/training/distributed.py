"""Optuna workers in separate processes on one shared study (RDB or journal storage).

Each worker loads the study with its own sampler seed (tuning.worker_seed: the seed, the launch
and the worker index) and runs its share of the trials; the storage hands an enqueued trial (the
warm start) to exactly one of them, and TPE's constant liar keeps concurrent proposals apart. The
processes are spawned, not forked: LightGBM's OpenMP runtime and SQLAlchemy's pools do not survive
a fork. The caller (run_study) collects the best trial from the storage afterwards.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import optuna

from mlplatform.training.tuning import (
    WorkerSpec,
    make_pruner,
    make_storage,
    optimize_trials,
)

logger = logging.getLogger(__name__)


def shares(n_trials: int, workers: int) -> list[int]:
    """`n_trials` split over at most `workers` workers as evenly as possible, none empty."""
    base, extra = divmod(int(n_trials), int(workers))
    return [base + (1 if i < extra else 0) for i in range(int(workers)) if base or i < extra]


def run_worker(spec: WorkerSpec) -> int:
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
    errors: list[BaseException] = []
    optimize_trials(study, spec, spec.fold_data(), errors)
    return spec.n_trials - len(errors)


def fan_out(spec: WorkerSpec, workers: int) -> list[BaseException]:
    """Run `spec.n_trials` over `workers` spawned processes; the errors of workers that died."""
    specs = [
        dataclasses.replace(spec, worker=i, n_trials=n)
        for i, n in enumerate(shares(spec.n_trials, workers))
    ]
    context = multiprocessing.get_context("spawn")
    failures: list[BaseException] = []
    with ProcessPoolExecutor(max_workers=len(specs), mp_context=context) as pool:
        futures = [pool.submit(run_worker, s) for s in specs]
        for s, future in zip(specs, futures, strict=True):
            try:
                future.result()
            except Exception as exc:  # a dead worker's RUNNING trial is failed by the heartbeat
                logger.warning("tuning worker %d of launch %d died: %r", s.worker, s.launch, exc)
                failures.append(exc)
    return failures
