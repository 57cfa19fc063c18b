"""Population Based Training: the documented example and worker, params, decisions, crashes."""

from __future__ import annotations

import math
import random
import subprocess
import sys
import textwrap

import pytest

import schedy
from schedy.errors import NoJobError, ResourceExistsError, ValidationError
from schedy.names import NAME_MAX, check_name
from schedy.pbt import MAXIMIZE, MINIMIZE, Perturb, Resample, Truncate
from schedy.plugins import registry
from schedy.random import Choice, IntUniform, LogUniform, Uniform
from schedy.storage import IndexedStorage
from schedy_schedulers.pbt import PopulationBasedTraining

# The documentation's example, as written but for one character: the call to
# PopulationBasedTraining( is closed by "}" there, a typo; here by ")".
DOC_EXPERIMENT = """
import schedy
db = schedy.SchedyDB()
experiment = schedy.PopulationBasedTraining(
    'MNIST with PBT',
    schedy.pbt.MAXIMIZE,
    'max_accuracy',
    exploit=schedy.pbt.Truncate(),
    explore={
    'learning_rate': schedy.pbt.Perturb(),
    'dropout_rate': schedy.pbt.Perturb(),
  },
  initial_distributions={
    'num_layers': schedy.random.Choice(range(1, 10)),
    'activations': schedy.random.Choice(['relu', 'tanh']),
    'kernel_size': schedy.random.Choice([3, 5, 7]),
    'num_filters': schedy.random.Choice([2, 4, 8, 16, 32, 64, 128, 256, 512]),
    'learning_rate': schedy.random.LogUniform(1e-6, 1e-1),
    'dropout_rate': schedy.random.Uniform(0.0, 0.8),
    },
    population_size=20,
)
db.add_experiment(experiment)
"""

# The documentation's PBT worker, as written.
DOC_WORKER = """
import schedy
db = schedy.SchedyDB()
experiment = db.get_experiment('MyExperiment')
with experiment.next_job() as job:
    model = create_model(job)
    if 'model_path' in job.results:
        model.load(job.results['model_path'])
    partial_train(model) # Partial training for a limited amount of time
    job.results = evaluate(model)
    model_save_path = 'dump_dir/' + job.id + '.mdl'
    model.save(model_save_path)
    job.results['model_path'] = model_save_path
"""

# A toy model for the worker: "accuracy" grows with the learning rate it trained with.
TOY_TRAINING = """
import json, os

os.makedirs('dump_dir', exist_ok=True)
TRAINED = []

class Model:
    def __init__(self, job):
        self.lr = job.hyperparameters['learning_rate']
        self.accuracy = 0.0
        self.slices = 0
    def load(self, path):
        with open(path) as f:
            saved = json.load(f)
        self.accuracy, self.slices = saved['accuracy'], saved['slices']
    def save(self, path):
        with open(path, 'w') as f:
            json.dump({'accuracy': self.accuracy, 'slices': self.slices}, f)

def create_model(job):
    return Model(job)

def partial_train(model):
    model.accuracy += (1 - model.accuracy) * min(1.0, model.lr * 10)
    model.slices += 1
    TRAINED.append(model.slices)

def evaluate(model):
    return {'max_accuracy': model.accuracy}
"""


def run_script(code: str, cwd, timeout: float = 300) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_documented_experiment_and_worker_run_as_written(tmp_path):
    run_script(DOC_EXPERIMENT, tmp_path)
    exp = schedy.SchedyDB().get_experiment("MNIST with PBT")
    assert isinstance(exp, PopulationBasedTraining)
    assert exp.objective == MAXIMIZE and exp.result_name == "max_accuracy" and exp.population_size == 20
    assert exp.exploit == Truncate(0.2) and exp.explore == {"learning_rate": Perturb(), "dropout_rate": Perturb()}

    # The worker, against a small PBT experiment named as in the worker example.
    run_script(
        """
        import schedy
        db = schedy.SchedyDB()
        db.add_experiment(schedy.PopulationBasedTraining(
            'MyExperiment', schedy.pbt.MAXIMIZE, 'max_accuracy', exploit=schedy.pbt.Truncate(0.25),
            explore={'learning_rate': schedy.pbt.Perturb()},
            initial_distributions={'learning_rate': schedy.random.LogUniform(1e-3, 1e-1)},
            population_size=4, max_generations=5))
        """,
        tmp_path,
    )
    out = run_script(
        TOY_TRAINING
        + f"WORKER = {DOC_WORKER!r}\n"
        + textwrap.dedent(
            """
            from schedy.errors import NoJobError
            runs = 0
            while True:
                try:
                    exec(WORKER)
                except NoJobError:
                    break
                runs += 1
            print(runs, max(TRAINED))
            """
        ),
        tmp_path,
    )
    runs, most_slices = map(int, out.split())
    assert runs == 4 * 5
    assert most_slices == 5  # models were reloaded from the pointer in the results, slice after slice
    exp = schedy.SchedyDB().get_experiment("MyExperiment")
    assert exp.status == exp.DONE
    jobs = {j.job_id: j for j in exp.all_jobs()}
    assert len(jobs) == 20 and all(j.status == "DONE" for j in jobs.values())
    for job in jobs.values():
        assert (tmp_path / job.results["model_path"]).exists()
        generation = job.lineage["generation"]
        if generation:
            assert job.lineage["parent"] in jobs
            assert jobs[job.lineage["parent"]].lineage["generation"] == generation - 1


# -- params
def test_params_beyond_the_float_range_are_refused_before_anything_is_stored(db):
    exp = schedy.PopulationBasedTraining("Huge", MINIMIZE, "loss", exploit=Truncate(), population_size=10**400,
                                         initial_distributions={"lr": LogUniform(1e-4, 1e-1)}, max_generations=10**400)
    with pytest.raises(ValidationError, match="too large for a JSON number"):
        db.add_experiment(exp)
    assert [e.name for e in db.get_experiments()] == []


def test_params_round_trip_through_the_wire_format_and_the_store(db):
    exp = PopulationBasedTraining(
        "P",
        MINIMIZE,
        "loss",
        exploit=Truncate(0.3),
        explore={"lr": Perturb(0.5, 2.0, resample_probability=0.1), "act": Resample()},
        initial_distributions={"lr": LogUniform(1e-4, 1e-1), "act": Choice(["relu", "tanh"])},
        population_size=6,
        max_generations=12,
    )
    params = exp.get_params()
    assert params == {
        "objective": "min",
        "qualityResultName": "loss",
        "exploit": {"truncate": 0.3},
        "explore": {
            "lr": {"perturb": {"minFactor": 0.5, "maxFactor": 2.0, "resampleProbability": 0.1}},
            "act": {"resample": {}},
        },
        "init": {"lr": {"loguniform": {"low": 1e-4, "high": 1e-1}}, "act": {"choice": {"values": ["relu", "tanh"]}}},
        "numParallel": 6,
        "maxGenerations": 12,
    }
    db.add_experiment(exp)
    back = db.get_experiment("P")
    assert type(back) is PopulationBasedTraining
    assert back.get_params() == params
    assert back.max_generations == 12 and back.population_size == 6


def test_original_params_are_read_including_the_max_generations_spelling():
    original = {
        "objective": "max",
        "qualityResultName": "acc",
        "exploit": {"truncate": 0.2},
        "explore": {"lr": {"perturb": {"minFactor": 0.8, "maxFactor": 1.2}}},
        "init": {"lr": {"uniform": {"low": 0, "high": 1}}},
        "numParallel": 4,
        "max_generations": 7,
    }
    schedy.schema.check(original, PopulationBasedTraining.PARAMS_SCHEMA, "params")
    exp = PopulationBasedTraining.from_params("O", "RUNNING", original)
    assert exp.max_generations == 7
    assert exp.get_params()["maxGenerations"] == 7 and "max_generations" not in exp.get_params()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"objective": "up"}, "objective"),
        ({"result_name": ""}, "result_name"),
        ({"exploit": "truncate"}, "exploit"),
        ({"explore": {"lr": 1.2}}, "explore"),
        ({"population_size": 0}, "population_size"),
        ({"max_generations": 2.5}, "max_generations"),
        ({"initial_distributions": {}, "population_size": 3}, "population_size needs"),
    ],
)
def test_bad_arguments_are_one_clear_error(kwargs, message):
    args = {"objective": MAXIMIZE, "result_name": "acc", "exploit": Truncate()}
    args.update(kwargs)
    with pytest.raises(ValidationError, match=message):
        PopulationBasedTraining("Bad", **args)


@pytest.mark.parametrize("make", [
    lambda: Truncate(0), lambda: Truncate(0.6), lambda: Perturb(1.2, 0.8), lambda: Perturb(resample_probability=2),
    lambda: Perturb(-2, -1), lambda: Perturb(0, 1), lambda: Truncate(10**400), lambda: Perturb(1, 10**400),
])
def test_bad_strategies_are_refused(make):
    with pytest.raises(ValidationError):
        make()


def test_registered_under_its_wire_and_cli_names():
    reg = registry()
    assert reg.scheduler("PBT") is PopulationBasedTraining
    assert reg.cli_schedulers["pbt"] is PopulationBasedTraining


def test_from_cli():
    exp = PopulationBasedTraining.from_cli(
        "C",
        "RUNNING",
        ["max", "acc", "truncate", "0.25", "perturb", "lr", "perturb", "mom", "0.5", "1.5", "resample", "act",
         "init", "lr", "loguniform", '{"low": 0.0001, "high": 0.1}', "population", "8", "generations", "20"],
    )
    assert exp.exploit == Truncate(0.25)
    assert exp.explore == {"lr": Perturb(), "mom": Perturb(0.5, 1.5), "act": Resample()}
    assert exp.initial_distributions == {"lr": LogUniform(0.0001, 0.1)}
    assert (exp.population_size, exp.max_generations) == (8, 20)


@pytest.mark.parametrize(
    "args, message",
    [
        (["max"], "usage"),
        (["best", "acc"], "objective"),
        (["max", "acc", "population", "many"], "whole number"),
        (["max", "acc", "perturb", "lr", "0.5"], "both"),
        (["max", "acc", "init", "lr", "gauss", "{}"], "unknown distribution"),
        (["max", "acc", "init", "lr", "uniform", "{low"], "not valid JSON"),
        (["max", "acc", "shuffle"], "unexpected"),
        (["max", "acc", "perturb", "lr", "resample", "lr"], "explore strategy of 'lr' is given twice"),
        (["max", "acc", "perturb", "lr", "0.5", "2", "perturb", "lr"], "explore strategy of 'lr' is given twice"),
        (["max", "acc"] + ["init", "lr", "uniform", '{"low": 0, "high": 1}'] * 2, "initial distribution of 'lr' is given twice"),
        (["max", "acc", "truncate", "0.2", "truncate", "0.3"], "truncate is given twice"),
        (["max", "acc", "population", "4", "population", "8"], "population is given twice"),
        (["max", "acc", "generations", "4", "generations", "8"], "generations is given twice"),
    ],
)
def test_from_cli_errors(args, message):
    with pytest.raises(ValidationError, match=message):
        PopulationBasedTraining.from_cli("C", "RUNNING", args)


# -- explore moves
def test_perturb_multiplies_within_the_factors_and_the_initial_range():
    rng = random.Random(0)
    perturb = Perturb(resample_probability=0)
    for _ in range(200):
        value, move = perturb.explore(0.5, None, rng)
        assert 0.4 <= value < 0.6 and value == pytest.approx(0.5 * move["perturb"])
        value, _ = perturb.explore(0.95, Uniform(0, 1), rng)
        assert 0.76 <= value < 1.0  # high is excluded, as in the distribution's own draws
    assert all(type(perturb.explore(0.5, Uniform(0, 1), rng)[0]) is float for _ in range(20))


def test_perturb_clamps_below_an_excluded_upper_bound():
    rng = random.Random(0)
    perturb = Perturb(1.5, 2.0, resample_probability=0)
    assert perturb.explore(0.9, Uniform(0, 1), rng)[0] == math.nextafter(1.0, 0.0)
    assert perturb.explore(0.09, LogUniform(1e-3, 1e-1), rng)[0] == math.nextafter(0.1, 0.0)
    assert perturb.explore(2, IntUniform(1, 3), rng)[0] == 3  # an integer range includes high


def test_perturb_never_leaves_the_float_range():
    # A value near the top of the range times 1.2 would be Infinity, which no job can hold:
    # every later claim of that member would fail.
    rng = random.Random(3)
    perturb = Perturb(1.1, 1.2, resample_probability=0)
    assert {perturb.explore(1.7e308, None, rng)[0] for _ in range(20)} == {1.7e308}


def test_perturb_keeps_integers_whole_and_moves_them():
    rng = random.Random(1)
    perturb = Perturb(resample_probability=0)
    values = {perturb.explore(1, IntUniform(1, 4), rng)[0] for _ in range(50)}
    assert values == {1, 2}  # 1 * 0.8 stays at the lower bound; 1 * 1.x moves up by one
    assert all(type(perturb.explore(10, None, rng)[0]) is int for _ in range(20))


def test_resampling_leaves_a_zero_that_multiplication_cannot():
    rng = random.Random(2)
    never = Perturb(resample_probability=0)
    assert {never.explore(0.0, Uniform(0, 1), rng)[0] for _ in range(50)} == {0.0}
    sometimes = Perturb()
    moves = [sometimes.explore(0.0, Uniform(0, 1), rng) for _ in range(400)]
    resampled = [v for v, m in moves if "resample" in m]
    assert 50 < len(resampled) < 150  # about a quarter
    assert all(0 < v < 1 for v in resampled)


def test_categorical_values_move_to_a_neighbour_or_are_resampled():
    rng = random.Random(3)
    choice = Choice([3, 5, 7])
    seen = [Perturb(resample_probability=0).explore(5, choice, rng) for _ in range(100)]
    assert {v for v, _ in seen} == {3, 7} and all("neighbour" in m for _, m in seen)
    assert {Perturb(resample_probability=0).explore(7, choice, rng)[0] for _ in range(30)} == {5}
    assert {Resample().explore(5, choice, rng)[0] for _ in range(100)} == {3, 5, 7}
    assert Perturb().explore("relu", None, rng) == ("relu", {})


def test_categorical_values_never_move_to_a_value_of_weight_zero():
    rng = random.Random(3)
    choice = Choice([1, 2, 3, 4, 5], weights=[1, 0, 1, 0, 0])
    moves = {Perturb(resample_probability=0).explore(3, choice, rng)[0] for _ in range(100)}
    assert moves == {1}  # 2 and 4, its neighbours, are never drawn; 4 and 5 neither
    assert {Perturb(resample_probability=0).explore(1, choice, rng)[0] for _ in range(30)} == {3}
    only = Choice(["a", "b"], weights=[1, 0])
    assert Perturb(resample_probability=0).explore("a", only, rng) == ("a", {})


def test_truncate_moves_only_the_bottom_to_the_top():
    rng = random.Random(4)
    ranking = [f"m{i}" for i in range(10)]
    truncate = Truncate(0.2)
    assert truncate.group_size(10) == 2 and truncate.group_size(2) == 1 and truncate.group_size(1) == 0
    # At least one member each way once there are two, however small the proportion (a
    # proportion below 1e-9 of the population gave none: no exploitation at all).
    assert [Truncate(1e-10).group_size(n) for n in (1, 2, 4, 10)] == [0, 1, 1, 1]
    assert [Truncate(0.3).group_size(n) for n in (10, 7)] == [3, 3]  # (10 * 0.3 is a hair over 3 in floats)
    assert all(truncate.donor(ranking, m, rng) is None for m in ranking[:8])
    assert {truncate.donor(ranking, "m9", rng) for _ in range(50)} == {"m0", "m1"}


# -- decisions, through next_job
def make_experiment(db, name="E", **kwargs):
    args = dict(
        objective=MAXIMIZE,
        result_name="acc",
        exploit=Truncate(0.25),
        explore={"lr": Perturb()},
        initial_distributions={"lr": Uniform(0, 1)},
        population_size=4,
        max_generations=4,
    )
    args.update(kwargs)
    exp = PopulationBasedTraining(name, **args)
    db.add_experiment(exp)
    return exp


def train(job, gain=None):
    with job:
        job.results = {"acc": job.results.get("acc", 0) + (job.hyperparameters["lr"] if gain is None else gain)}


def test_population_then_successors_then_done(db):
    exp = make_experiment(db)
    first = [exp.next_job() for _ in range(4)]
    assert sorted(j.job_id for j in first) == ["m000-g000", "m001-g000", "m002-g000", "m003-g000"]
    with pytest.raises(NoJobError):
        exp.next_job()  # all members are training
    for job in first:
        train(job)
    count = 4
    while True:
        try:
            train(exp.next_job())
        except NoJobError:
            break
        count += 1
    assert count == 16
    assert db.get_experiment("E").status == "DONE"
    jobs = {j.job_id: j for j in exp.all_jobs()}
    for m in range(4):
        chain = [jobs[f"m{m:03d}-g{g:03d}"] for g in range(4)]
        for g, job in enumerate(chain[1:], start=1):
            assert job.lineage["member"] == f"m{m:03d}" and job.lineage["generation"] == g
            assert job.lineage["parent"] == chain[g - 1].job_id
            if "donor" not in job.lineage:
                assert job.hyperparameters == chain[g - 1].hyperparameters  # went on with its own
    exploited = [j for j in jobs.values() if "donor" in j.lineage]
    assert exploited, "with four members, the last one copies the best one"
    for job in exploited:
        donor = jobs[job.lineage["donor"]]
        assert job.lineage["explore"]["lr"]
        # it started from the donor's results (its model) and its explored hyperparameters
        assert job.results["acc"] == pytest.approx(donor.results["acc"] + job.hyperparameters["lr"])


def test_bottom_member_copies_the_top_member(db):
    exp = make_experiment(db, max_generations=2, explore={})
    jobs = [exp.next_job() for _ in range(4)]
    for job, acc in zip(jobs, [0.1, 0.9, 0.5, 0.3]):
        with job:
            job.results = {"acc": acc, "model": job.job_id}
    by_member = {}
    for _ in range(4):
        job = exp.next_job()
        by_member[job.lineage["member"]] = job
    worst, best = jobs[0], jobs[1]
    assert worst.lineage["member"] == "m000"
    assert by_member["m000"].lineage["donor"] == best.job_id
    assert by_member["m000"].results == {"acc": 0.9, "model": best.job_id}
    assert by_member["m000"].hyperparameters == best.hyperparameters  # no explore strategy: copied unchanged
    for m in ("m001", "m002", "m003"):
        assert "donor" not in by_member[m].lineage


def test_a_donor_ahead_is_ranked_by_the_model_it_would_hand_over(db):
    # A (0.0) copies D and scores 1.7 at generation 1. B (0.5), deciding at generation 0,
    # must not take A for a top member: what A would hand over is its generation-0 model,
    # the population's worst.
    exp = make_experiment(db, population_size=None, initial_distributions={}, max_generations=2)
    for name, acc in [("A", 0.0), ("B", 0.5), ("C", 0.6), ("D", 0.7)]:
        exp.add_job(job_id=name, hyperparameters={"lr": 0.1}, status="DONE", results={"acc": acc})
    first = exp.next_job()
    assert (first.lineage["parent"], first.lineage["donor"]) == ("A", "D")
    train(first, gain=1.0)
    decisions = {job.lineage["parent"]: job.lineage.get("donor") for job in (exp.next_job() for _ in range(3))}
    assert decisions == {"B": None, "C": None, "D": None}


def test_minimize_ranks_the_other_way(db):
    exp = make_experiment(db, objective=MINIMIZE, max_generations=2)
    jobs = [exp.next_job() for _ in range(4)]
    for job, loss in zip(jobs, [0.1, 0.9, 0.5, 0.3]):
        with job:
            job.results = {"acc": loss}
    successors = [exp.next_job() for _ in range(4)]
    donors = {j.lineage["member"]: j.lineage.get("donor") for j in successors}
    assert donors["m001"] == jobs[0].job_id
    assert [m for m, d in donors.items() if d] == ["m001"]


def test_crashed_slice_is_retried_then_ranks_last(db):
    exp = make_experiment(db, max_generations=3, explore={})
    exp.max_attempts = 2
    exp.push_updates()
    jobs = [exp.next_job() for _ in range(4)]
    for job, acc in zip(jobs[1:], [0.9, 0.5, 0.3]):
        with job:
            job.results = {"acc": acc}
    with pytest.raises(RuntimeError):
        with jobs[0]:
            jobs[0].results = {"acc": 5.0}
            raise RuntimeError("out of memory")
    retry = exp.next_job()
    assert retry.job_id == "m000-g000-a2" and retry.attempt == 2
    assert retry.lineage == {"member": "m000", "generation": 0, "retryOf": "m000-g000"}
    assert retry.hyperparameters == jobs[0].hyperparameters and retry.results == {}
    assert retry.seed == jobs[0].seed  # a retry keeps the seed of the job it retries
    with pytest.raises(RuntimeError):
        with retry:
            raise RuntimeError("out of memory again")
    # Out of attempts: m000 ranks last and copies the best member.
    successors = {j.lineage["member"]: j for j in (exp.next_job() for _ in range(4))}
    assert successors["m000"].lineage["donor"] == jobs[1].job_id
    assert successors["m000"].lineage["parent"] == "m000-g000-a2"
    assert successors["m000"].results == {"acc": 0.9}


def test_every_retry_names_the_first_attempt_and_keeps_its_seed(db):
    exp = make_experiment(db, population_size=1, max_generations=1)
    exp.max_attempts = 3
    exp.push_updates()
    first = exp.next_job()
    attempts = [first]
    for _ in range(2):
        with pytest.raises(RuntimeError):
            with attempts[-1]:
                raise RuntimeError("diverged")
        attempts.append(exp.next_job())
    assert [job.job_id for job in attempts] == ["m000-g000", "m000-g000-a2", "m000-g000-a3"]
    assert [job.lineage.get("retryOf") for job in attempts] == [None, "m000-g000", "m000-g000"]
    assert {job.seed for job in attempts} == {first.seed} and first.seed is not None


def test_a_crashed_hand_made_job_of_the_longest_id_is_retried_under_a_valid_id(db):
    exp = make_experiment(db, initial_distributions={}, population_size=None, max_generations=2)
    exp.max_attempts = 2
    exp.push_updates()
    long_id = "x" * NAME_MAX
    exp.add_job(job_id=long_id, hyperparameters={"lr": 0.1})
    with pytest.raises(RuntimeError):
        with exp.next_job():
            raise RuntimeError("out of memory")
    retry = exp.next_job()  # a proposal with an id too long would be refused by every claim
    assert retry.lineage["retryOf"] == long_id and retry.attempt == 2
    assert len(check_name("job id", retry.job_id)) == NAME_MAX and retry.job_id.endswith("-a2")


def test_hand_made_jobs_join_the_population(db):
    # Through a service, the service calls the hook when it stores a finished job.
    exp = make_experiment(db, initial_distributions={}, population_size=None, max_generations=3, exploit=Truncate(0.5))
    exp.add_job(hyperparameters={"lr": 1.0}, job_id="mine-a")
    exp.add_job(hyperparameters={"lr": 0.0}, job_id="mine-b", status="DONE", results={"acc": -1})
    with pytest.raises(ValidationError, match="lr"):
        exp.add_job(hyperparameters={"momentum": 0.9})
    first = exp.next_job()
    assert first.job_id == "mine-a"
    train(first)
    successors = {exp.next_job().lineage["parent"]: None for _ in range(2)}
    assert set(successors) == {"mine-a", "mine-b"}
    with pytest.raises(NoJobError):
        exp.next_job()


@pytest.mark.parametrize("status, lineage", [
    ("PRUNED", {"parent": 5}), ("DONE", {"generation": None}), ("DONE", {"generation": "max", "parent": ""}),
])
def test_a_hand_made_job_with_any_lineage_joins_without_stopping_the_claims(db, status, lineage):
    exp = make_experiment(db, initial_distributions={}, population_size=None, max_generations=5, exploit=Truncate(0.5))
    odd = exp.add_job(hyperparameters={"lr": 1.0}, job_id="odd")
    odd.status, odd.results, odd.lineage = status, {"acc": 1}, lineage
    odd.put()  # ends it: it joins the population
    exp.add_job(hyperparameters={"lr": 0.5}, job_id="plain", status="DONE", results={"acc": 0})
    parents = set()
    for _ in range(2):
        successor = exp.next_job()
        parents.add(successor.lineage["parent"])
        assert successor.lineage["generation"] == 1
        train(successor)
    assert parents == {"odd", "plain"}


def test_the_experiment_is_not_done_while_a_hand_made_job_is_still_running(db):
    # Before, the members' last generation ended it DONE, and the hand-made job that was
    # still running never joined (nor, if its worker died, was it ever recovered).
    exp = make_experiment(db, population_size=1, max_generations=2)
    exp.add_job(hyperparameters={"lr": 0.5}, job_id="mine")
    hand = exp.next_job()
    assert hand.job_id == "mine"
    for _ in range(2):
        train(exp.next_job())  # the only member's two generations
    with pytest.raises(NoJobError):
        exp.next_job()
    assert db.get_experiment(exp.name).status == "RUNNING"
    train(hand)  # joins as a second member, which then trains its next generation
    successor = exp.next_job()
    assert (successor.job_id, successor.lineage["parent"]) == ("m001-g001", "mine")
    train(successor)
    with pytest.raises(NoJobError):
        exp.next_job()
    assert db.get_experiment(exp.name).status == "DONE"


def test_the_experiment_is_not_done_while_a_hand_made_job_is_stored_finished_but_not_joined_yet(db, monkeypatch):
    # Its lease marker goes with the DONE write, and it joins after: a claim in between saw
    # nothing left to wait for, ended the experiment DONE, and the joined member never trained.
    from schedy_schedulers.pbt import PopulationBasedTraining

    if not isinstance(db.storage, IndexedStorage):
        pytest.skip("through a service the job joins inside the service's own write, out of a client's reach")
    exp = make_experiment(db, population_size=1, max_generations=2)
    exp.add_job(hyperparameters={"lr": 0.5}, job_id="mine")
    hand = exp.next_job()
    for _ in range(2):
        train(exp.next_job())
    joining = PopulationBasedTraining.on_job_finished
    between = []

    def claim_first(self, ctx, doc):
        if doc["id"] == "mine":  # another worker asks while this one is between its two writes
            with pytest.raises(NoJobError):
                db.get_experiment(exp.name).next_job()
            between.append(db.get_experiment(exp.name).status)
        return joining(self, ctx, doc)

    monkeypatch.setattr(PopulationBasedTraining, "on_job_finished", claim_first)
    train(hand)
    monkeypatch.undo()
    assert between == ["RUNNING"]
    successor = exp.next_job()
    assert (successor.job_id, successor.lineage["parent"]) == ("m001-g001", "mine")


def test_hand_made_jobs_cannot_take_a_slice_id(db):
    # Such a job would stand in for the member's slice when the member reached it.
    exp = make_experiment(db, population_size=1, max_generations=3)
    for job_id in ("m000-g001", "m000-g000-a2", "m1000-g010"):
        with pytest.raises(ValidationError, match="slice id"):
            exp.add_job(hyperparameters={"lr": 0.5}, job_id=job_id)
    for store in (lambda job: job.put(), lambda job: job.try_run()):
        with pytest.raises(ValidationError, match="slice id"):
            store(schedy.Job("m000-g001", exp, {"lr": 0.5}))
    exp.add_job(hyperparameters={"lr": 0.5}, job_id="m000-g1")  # not a form the scheduler makes
    assert [job.job_id for job in exp.all_jobs()] == ["m000-g1"]
    # A slice that exists is no new job: it may be overwritten (safe=False), or refused as existing.
    exp = make_experiment(db, "E2", population_size=1, max_generations=3)
    train(exp.next_job())
    assert exp.get_job("m000-g000").status == "DONE"
    with pytest.raises(ResourceExistsError):
        schedy.Job("m000-g000", exp, {"lr": 0.5}, status="DONE", results={"acc": 0.0}).put()
    schedy.Job("m000-g000", exp, {"lr": 0.5}, status="DONE", results={"acc": -1.0}).put(safe=False)
    assert exp.get_job("m000-g000").results == {"acc": -1.0}


def test_suggestions_are_reproducible_from_the_experiment_and_job_ids(db):
    exp = make_experiment(db, population_size=3)
    job = exp.next_job()
    ctx = schedy.SchedulerContext(exp, db.storage, "unused")
    assert job.seed == ctx.seed(job.job_id)
    assert job.hyperparameters["lr"] == Uniform(0, 1).sample(ctx.rng(job.job_id))


# -- the core hook the scheduler relies on
class Recording(schedy.ManualSearch):
    def __init__(self, name):
        super().__init__(name)
        self.finished = []

    def on_job_finished(self, ctx, doc):
        self.finished.append((doc["id"], doc["status"]))


def test_on_job_finished_is_called_once_when_a_job_leaves_running(db):
    if not isinstance(db.storage, IndexedStorage):
        pytest.skip("the hook is called where scheduler state is kept (files, S3), not by a service client")
    exp = Recording("Hook")
    db.add_experiment(exp)
    exp.add_job(hyperparameters={}, job_id="queued")
    exp.add_job(hyperparameters={}, job_id="done", status="DONE")
    job = exp.next_job()
    job.report(1, loss=0.5)
    assert exp.finished == [("done", "DONE")]
    with job:
        pass
    job.put()  # stored again, but it did not change status
    assert exp.finished == [("done", "DONE"), ("queued", "DONE")]


def test_max_generations_is_respected_for_any_finish_order(db):
    exp = make_experiment(db, population_size=2, max_generations=3)
    running = [exp.next_job(), exp.next_job()]
    rng = random.Random(5)
    done = 0
    while running:
        job = running.pop(rng.randrange(len(running)))
        train(job, gain=rng.random())
        done += 1
        try:
            running.append(exp.next_job())
        except NoJobError:
            pass
        if not running:
            try:
                running.append(exp.next_job())
            except NoJobError:
                break
    assert done == 6
    assert db.get_experiment("E").status == "DONE"


def test_schedy_add_pbt_on_the_command_line(store_url, capsys):
    from schedy.cli.app import run

    code = run(["--db", store_url, "add", "Cli", "pbt", "min", "loss", "perturb", "lr", "0.5", "2",
                "init", "lr", "uniform", '{"low": 0, "high": 1}', "population", "2", "generations", "3"])
    assert code == 0, capsys.readouterr().err
    exp = schedy.SchedyDB(db=store_url).get_experiment("Cli")
    assert isinstance(exp, PopulationBasedTraining) and exp.max_generations == 3
    assert exp.explore == {"lr": Perturb(0.5, 2)}
    assert run(["--db", store_url, "add", "Bad", "pbt", "min", "loss", "truncate", "0.9"]) == 2
    err = capsys.readouterr().err
    assert "proportion" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda text: text.replace('"generation":0', '"generation":"0"'), ": generation must be integer, not string"),
        (lambda text: text[:10], " is not valid JSON"),
    ],
)
def test_a_member_state_edited_by_hand_is_named_and_nothing_is_handed_out_from_it(files_store_url, damage, message):
    from pathlib import Path

    db = schedy.SchedyDB(db=files_store_url)
    exp = make_experiment(db, population_size=2)
    for job in (exp.next_job(), exp.next_job()):
        train(job, gain=0.5)
    (path,) = Path(files_store_url).glob("state/*/*/member-1.json")
    path.write_text(damage(path.read_text()))
    before = path.read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "schedy", "--db", files_store_url, "run", exp.name, "--", sys.executable, "-c", "pass"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    [line] = proc.stderr.splitlines()
    assert line.replace("Error: stored ", "Error: ").startswith(f"Error: state 'member-1' of experiment {exp.name!r}{message}")
    assert path.read_bytes() == before
