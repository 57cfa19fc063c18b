"""PBT under racing workers: 4 processes, population 8, every worker deciding for itself."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import schedy
from schedy.pbt import MAXIMIZE, Perturb, Truncate
from schedy.random import Uniform
from schedy_schedulers.pbt import PopulationBasedTraining

POPULATION = 8
GENERATIONS = 6

WORKER = textwrap.dedent(
    """
    import random, sys, time
    import schedy
    from schedy.errors import NoJobError

    db = schedy.SchedyDB(db=sys.argv[1])
    experiment = db.get_experiment("Race")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            job = experiment.next_job()
        except NoJobError:
            if db.get_experiment("Race").status == "DONE":
                break
            time.sleep(0.02)  # other members are training: ask again
            continue
        with job:
            model = job.results.get("model", [])
            time.sleep(random.uniform(0, 0.03))  # slices of uneven length: members drift apart
            acc = job.hyperparameters["lr"] + (job.results.get("acc", 0) if sys.argv[2] == "cumulative" else 0)
            job.results = {"acc": acc, "model": model + [job.id]}
        print(job.id, flush=True)
    """
)


@pytest.mark.timeout(600)
# "last": a slice's result is its lr alone, so a member in the middle of a slice may rank
# above finished ones; it must not hand over the older model it last finished.
@pytest.mark.parametrize("objective", ["cumulative", "last"])
def test_four_workers_population_eight_no_double_successor_no_skipped_generation(store_url, objective):
    db = schedy.SchedyDB(db=store_url)
    db.add_experiment(
        PopulationBasedTraining(
            "Race",
            MAXIMIZE,
            "acc",
            exploit=Truncate(0.25),
            explore={"lr": Perturb()},
            initial_distributions={"lr": Uniform(0, 1)},
            population_size=POPULATION,
            max_generations=GENERATIONS,
        )
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, store_url, objective], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    handed_out = []
    for worker in workers:
        out, err = worker.communicate(timeout=400)
        assert worker.returncode == 0, err
        handed_out += out.split()

    # Every job was handed to exactly one worker, and every job there is was handed out.
    assert len(handed_out) == len(set(handed_out)) == POPULATION * GENERATIONS
    experiment = db.get_experiment("Race")
    assert experiment.status == "DONE"
    jobs = {job.job_id: job for job in experiment.all_jobs()}
    assert set(jobs) == set(handed_out)
    assert all(job.status == "DONE" for job in jobs.values())

    # One job per member and generation, each continuing the member's previous one.
    by_slot = {}
    for job in jobs.values():
        slot = (job.lineage["member"], job.lineage["generation"])
        assert slot not in by_slot, f"two jobs for member {slot[0]} generation {slot[1]}"
        by_slot[slot] = job
    members = {member for member, _ in by_slot}
    assert len(members) == POPULATION
    for member in members:
        assert sorted(g for m, g in by_slot if m == member) == list(range(GENERATIONS))
        for g in range(1, GENERATIONS):
            job = by_slot[(member, g)]
            assert job.lineage["parent"] == by_slot[(member, g - 1)].job_id
            # A model's age is its generation: its slices are one per generation so far.
            assert len(job.results["model"]) == g + 1
            source = jobs[job.lineage.get("donor", job.lineage["parent"])]
            assert job.results["model"][:-1] == source.results["model"]
    parents = [job.lineage["parent"] for job in jobs.values() if "parent" in job.lineage]
    assert len(parents) == len(set(parents)), "a slice got two successors"
    db.close()
