"""Population Based Training on the PBT paper's toy problem, Schedy next to Syne Tune.

The problem (Jaderberg et al., 2017, section 4.1): maximize Q(t) = 1.2 - (0.75 t0^2 + t1^2).
Each member climbs the surrogate 1.2 - (h0 t0^2 + h1 t1^2) by gradient ascent (learning
rate 0.05, 4 steps a slice) from t = (0.9, 0.9); its hyperparameters are h. Population 2,
starting at h = (1, 0) and (0, 1), 25 generations (100 steps a member). The figure is the
best Q seen by step 20, 40 and 100 of a member, mean and spread over the seeds.

Schedy runs the real thing: a files store in a temporary directory, the two starting
members added by hand, a worker calling ``next_job()`` until ``NoJobError``, the model
(t) carried in the job's results. Syne Tune's ``PopulationBasedTraining`` is driven by
the same loop of 4-step slices over the same problem.

Usage: python3 bench/pbt.py [--seeds 30]
Syne Tune: pip install --no-deps syne-tune, plus numpy pandas dill sortedcontainers typing_extensions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import deque

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

LR = 0.05
STEPS = 4
GENERATIONS = 25
START_THETA = (0.9, 0.9)
START_H = ({"h0": 1.0, "h1": 0.0}, {"h0": 0.0, "h1": 1.0})


def q(theta) -> float:
    return 1.2 - (0.75 * theta[0] ** 2 + theta[1] ** 2)


def slice_of_training(theta, h) -> tuple[list[float], list[float]]:
    """4 gradient-ascent steps on the surrogate; the new theta and Q after each step."""
    theta = list(theta)
    qs = []
    for _ in range(STEPS):
        theta = [theta[0] - LR * 2 * h["h0"] * theta[0], theta[1] - LR * 2 * h["h1"] * theta[1]]
        qs.append(q(theta))
    return theta, qs


def schedy_run(explore_factory) -> list[tuple[int, float]]:
    import schedy
    from tests.workers import claimed_jobs

    seen = []
    with tempfile.TemporaryDirectory() as store:
        db = schedy.SchedyDB(config_override={"db": store})
        experiment = schedy.PopulationBasedTraining(
            "toy",
            schedy.pbt.MAXIMIZE,
            "Q",
            exploit=schedy.pbt.Truncate(),
            explore={"h0": explore_factory(), "h1": explore_factory()},
            initial_distributions={"h0": schedy.random.Uniform(0, 1), "h1": schedy.random.Uniform(0, 1)},
            max_generations=GENERATIONS,
        )
        db.add_experiment(experiment)
        for h in START_H:
            experiment.add_job(hyperparameters=dict(h))
        for job in claimed_jobs(experiment):
            with job:
                theta, qs = slice_of_training(job.results.get("theta", START_THETA), job.hyperparameters)
                first_step = job.lineage.get("generation", 0) * STEPS
                seen += [(first_step + i + 1, value) for i, value in enumerate(qs)]
                job.results = {"Q": qs[-1], "theta": theta}
        assert db.get_experiment("toy").status == "DONE"
        db.close()
    return seen


def syne_tune_run(seed: int, resample_probability: float = 0.25) -> list[tuple[int, float]]:
    from datetime import datetime

    from syne_tune.backend.trial_status import Trial
    from syne_tune.config_space import uniform
    from syne_tune.optimizer.scheduler import SchedulerDecision
    from syne_tune.optimizer.schedulers.pbt import PopulationBasedTraining

    scheduler = PopulationBasedTraining(
        config_space={"h0": uniform(0, 1), "h1": uniform(0, 1)},
        metric="Q",
        time_attr="step",
        max_t=GENERATIONS * STEPS,
        do_minimize=False,
        random_seed=seed,
        population_size=2,
        perturbation_interval=STEPS,
        quantile_fraction=0.25,
        resample_probability=resample_probability,
        searcher_kwargs={"points_to_evaluate": [dict(h) for h in START_H]},
    )
    checkpoints: dict[int, tuple[list[float], int]] = {}
    active: deque = deque()
    seen = []

    def start() -> None:
        suggestion = scheduler.suggest()
        trial = Trial(trial_id=len(checkpoints), config=suggestion.config, creation_time=datetime.now())
        scheduler.on_trial_add(trial)
        source = suggestion.checkpoint_trial_id
        theta, t = checkpoints[source] if source is not None else (list(START_THETA), 0)
        checkpoints[trial.trial_id] = (theta, t)
        active.append(trial)

    start()
    start()
    while active:
        trial = active.popleft()
        theta, t = checkpoints[trial.trial_id]
        decision = SchedulerDecision.CONTINUE
        for _ in range(STEPS):
            theta, (value,) = _one_step(theta, trial.config)
            t += 1
            seen.append((t, value))
            checkpoints[trial.trial_id] = (theta, t)
            decision = scheduler.on_trial_result(trial, {"step": t, "Q": value})
            if decision != SchedulerDecision.CONTINUE:
                break
        if decision == SchedulerDecision.CONTINUE:
            active.append(trial)
        elif t < GENERATIONS * STEPS:
            start()  # exploited: a new trial from the donor's checkpoint
    return seen


def _one_step(theta, h):
    theta = [theta[0] - LR * 2 * h["h0"] * theta[0], theta[1] - LR * 2 * h["h1"] * theta[1]]
    return theta, [q(theta)]


#: Steps of a member at which the best Q so far is reported.
CHECKPOINTS = (20, 40, GENERATIONS * STEPS)


def summary(name: str, runs: list[list[tuple[int, float]]], seconds: float) -> str:
    cells = []
    for limit in CHECKPOINTS:
        best = [max(v for t, v in seen if t <= limit) for seen in runs]
        cells.append(f"{statistics.mean(best):6.3f} +- {statistics.stdev(best):5.3f}")
    final = [max(v for _, v in seen) for seen in runs]
    reached = sum(v >= 1.19 for v in final)
    return f"{name:<46} " + "  ".join(cells) + f"  {reached:>3}/{len(runs)}  {seconds:6.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    args = parser.parse_args()
    import schedy

    print(f"PBT toy problem: population 2, {GENERATIONS} generations of {STEPS} steps, {args.seeds} seeds")
    print(f"best Q, mean +- stdev over seeds (optimum 1.2; never exploring h from (1,0) and (0,1): {_no_pbt():.4f})")
    header = "  ".join(f"{f'by step {limit}':^15}" for limit in CHECKPOINTS)
    print(f"{'':<46} {header}  Q>=1.19  time")
    rows = [
        ("Schedy PBT, defaults (Truncate(), Perturb())", lambda seed: schedy_run(schedy.pbt.Perturb)),
        (
            "Schedy PBT, Perturb(resample_probability=0)",
            lambda seed: schedy_run(lambda: schedy.pbt.Perturb(resample_probability=0)),
        ),
    ]
    try:
        import syne_tune  # noqa: F401

        rows.append(("Syne Tune PBT (resample 0.25, quantile 0.25)", syne_tune_run))
        rows.append(("Syne Tune PBT (resample 0)", lambda seed: syne_tune_run(seed, 0.0)))
    except ImportError:
        print("(Syne Tune is not installed: its rows are left out)")
    for name, run in rows:
        started = time.perf_counter()
        runs = [run(seed) for seed in range(args.seeds)]
        print(summary(name, runs, time.perf_counter() - started))


def _no_pbt() -> float:
    """Best Q of the two starting members trained alone for all generations."""
    best = -float("inf")
    for h in START_H:
        theta = list(START_THETA)
        for _ in range(GENERATIONS):
            theta, qs = slice_of_training(theta, h)
            best = max(best, *qs)
    return best


if __name__ == "__main__":
    main()
