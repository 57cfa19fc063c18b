"""Job and Experiment API behaviour beyond the tutorials."""

import time

import pytest

import schedy
from schedy.errors import (
    LeaseLostError,
    ResourceExistsError,
    ResourceNotFoundError,
    UnsafeUpdateError,
    ValidationError,
)
from tests.workers import StopAboveOne


@pytest.fixture
def exp(tmp_path):
    db = schedy.SchedyDB(db=str(tmp_path))
    db.add_experiment(schedy.ManualSearch("E"))
    return db.get_experiment("E")


def test_put_safe_refuses_to_overwrite_and_unsafe_does(exp):
    job = exp.add_job(hyperparameters={"x": 1})
    other = exp.get_job(job.job_id)
    other.results["by"] = "other"
    other.put()
    job.results["by"] = "me"
    with pytest.raises(UnsafeUpdateError):
        job.put()
    assert exp.get_job(job.job_id).results == {"by": "other"}
    job.put(safe=False)
    assert exp.get_job(job.job_id).results == {"by": "me"}


def test_another_object_of_a_held_job_changing_it_is_no_lost_lease(exp, monkeypatch):
    monkeypatch.setenv("SCHEDY_LEASE_SECONDS", "1.5")  # a heartbeat every 0.5 s
    exp.add_job(job_id="j", hyperparameters={"x": 1})
    with pytest.raises(UnsafeUpdateError) as raised:
        with exp.next_job() as job:
            same = exp.get_job("j")
            same.results["progress"] = 0.5
            same.put()
            time.sleep(1.2)  # heartbeats find the job changed, still held by this worker
            assert not job.should_stop()
            job.results["loss"] = 0.1  # from a stale object: refused, not taken for a lost lease
    assert not isinstance(raised.value, LeaseLostError)
    stored = exp.get_job("j")
    assert stored.status == "RUNNING" and stored.results == {"progress": 0.5}


def test_results_held_before_the_block_stay_the_jobs(exp):
    job = exp.add_job(hyperparameters={"x": 1})
    results, hyperparameters = job.results, job.hyperparameters
    with job:
        results["loss"] = 0.25
        hyperparameters["note"] = "tuned"
    stored = exp.get_job(job.job_id)
    assert stored.results == {"loss": 0.25} and stored.hyperparameters == {"x": 1, "note": "tuned"}


def test_add_job_with_an_existing_id(exp):
    exp.add_job(job_id="fixed", hyperparameters={"x": 1})
    with pytest.raises(ResourceExistsError):
        exp.add_job(job_id="fixed", hyperparameters={"x": 2})
    assert exp.get_job("fixed").hyperparameters == {"x": 1}


def test_delete_ensure(exp):
    job = exp.add_job(hyperparameters={})
    job.delete()
    with pytest.raises(ResourceNotFoundError):
        job.delete()
    job.delete(ensure=False)
    with pytest.raises(ResourceNotFoundError):
        exp.get_job(job.job_id)


def test_report_keeps_a_bounded_history(exp):
    exp.add_job(hyperparameters={})
    with exp.next_job() as job:
        for step in range(1005):
            job.history.append({"step": step, "loss": 1.0})
        job.report(1005, loss=0.5, accuracy=0.9)
        assert not job.should_stop()
    stored = exp.get_job(job.job_id).history
    assert len(stored) == 1000
    assert stored[-1] == {"step": 1005, "loss": 0.5, "accuracy": 0.9}
    with pytest.raises(ValidationError):
        job.report("first", loss=1)


def test_results_must_be_json(exp):
    job = exp.add_job(hyperparameters={})
    job.results["loss"] = float("nan")
    with pytest.raises(ValidationError, match=r"results\.loss is NaN"):
        job.put()
    job.results = {"curve": [1.0, float("inf")]}
    with pytest.raises(ValidationError, match=r"results\.curve\[1\] is Infinity"):
        job.put()
    job.results = {"model": object()}
    with pytest.raises(ValidationError, match="results.model is a object"):
        job.put()
    assert exp.get_job(job.job_id).results == {}


def test_results_that_contain_themselves_are_refused(exp):
    job = exp.add_job(hyperparameters={})
    loop: dict = {"step": 1}
    loop["self"] = loop
    job.results["curve"] = loop
    with pytest.raises(ValidationError, match=r"^results\.curve\.self contains itself"):
        job.put()
    assert exp.get_job(job.job_id).results == {}


def test_results_are_copied_as_json_would_store_them(exp):
    job = exp.add_job(hyperparameters={"shape": (2, 3), "flags": {1: True}})
    curve = [0.5, 0.25]
    job.results["curve"] = curve
    job.put()
    curve.append(0.125)  # changed after put: the stored copy is not
    stored = exp.get_job(job.job_id)
    assert stored.hyperparameters == {"shape": [2, 3], "flags": {"1": True}}
    assert stored.results == {"curve": [0.5, 0.25]}


def test_numpy_values_are_stored_as_numbers(exp):
    np = pytest.importorskip("numpy")
    job = exp.add_job(hyperparameters={"lr": np.float32(0.5), "sizes": np.arange(3)})
    job.results["acc"] = np.float64(0.25)
    job.put()
    stored = exp.get_job(job.job_id)
    assert stored.hyperparameters == {"lr": 0.5, "sizes": [0, 1, 2]}
    assert stored.results == {"acc": 0.25}


def test_numpy_long_doubles_are_stored_as_floats(exp):
    np = pytest.importorskip("numpy")
    exp.add_job(hyperparameters={})
    with exp.next_job() as job:
        job.results["loss"] = np.longdouble(0.5)
    assert exp.get_job(job.job_id).results == {"loss": 0.5}
    job = exp.add_job(hyperparameters={})
    job.results["z"] = np.clongdouble(1 + 2j)  # no JSON number holds it: refused, named
    with pytest.raises(ValidationError, match="results.z is a clongdouble"):
        job.put()


def test_bad_job_input(exp):
    with pytest.raises(ValidationError, match="job status must be one of"):
        exp.add_job(hyperparameters={}, status="FINISHED")
    with pytest.raises(ValidationError, match="hyperparameters must be a dict"):
        exp.add_job(hyperparameters=[1, 2])
    with pytest.raises(ValidationError, match="job id must not be empty"):
        exp.add_job(job_id="", hyperparameters={})
    with pytest.raises(TypeError, match="unexpected keyword"):
        exp.add_job(hyperparams={})


def test_random_search_jobs_need_its_hyperparameters(tmp_path):
    db = schedy.SchedyDB(db=str(tmp_path))
    db.add_experiment(schedy.RandomSearch("R", {"x": schedy.random.Uniform(0, 1)}))
    exp = db.get_experiment("R")
    with pytest.raises(ValidationError, match="lacks x and has unknown y"):
        exp.add_job(hyperparameters={"y": 1})
    for write in ("put", "try_run"):  # a new job made by hand, written without add_job
        with pytest.raises(ValidationError, match="lacks x"):
            getattr(schedy.Job("by-hand", exp, {}), write)()
    assert list(exp.all_jobs()) == []
    queued = exp.add_job(hyperparameters={"x": 0.5})
    stored = exp.get_job(queued.job_id)
    stored.hyperparameters = {}
    stored.put()  # an update of a stored job is the writer's to decide
    assert exp.next_job().job_id == queued.job_id  # queued jobs come before suggestions


def test_random_search_is_reproducible_per_job(tmp_path):
    db = schedy.SchedyDB(db=str(tmp_path))
    db.add_experiment(schedy.RandomSearch("R", {"x": schedy.random.Uniform(0, 1), "n": schedy.random.IntUniform(1, 100)}))
    exp = db.get_experiment("R")
    with exp.next_job() as job:
        pass
    from schedy.experiment import SchedulerContext

    ctx = SchedulerContext(exp, db.storage, job.job_id)
    assert exp.suggest(ctx).hyperparameters == job.hyperparameters
    assert ctx.seed(job.job_id) == job.seed


def test_push_updates_is_safe(tmp_path):
    db = schedy.SchedyDB(db=str(tmp_path))
    db.add_experiment(schedy.RandomSearch("R", {"x": schedy.random.Uniform(0, 1)}))
    mine, theirs = db.get_experiment("R"), db.get_experiment("R")
    theirs.distributions["x"] = schedy.random.Uniform(0, 2)
    theirs.push_updates()
    assert db.get_experiment("R").distributions["x"] == schedy.random.Uniform(0, 2)
    mine.status = mine.DONE
    with pytest.raises(UnsafeUpdateError):
        mine.push_updates()


def test_changes_not_pushed_survive_a_claim_after_another_process_changed_the_experiment(tmp_path):
    db = schedy.SchedyDB(db=str(tmp_path))
    db.add_experiment(schedy.RandomSearch("R", {"x": schedy.random.Uniform(0, 1)}))
    mine, theirs = db.get_experiment("R"), db.get_experiment("R")
    mine.distributions["x"] = schedy.random.Uniform(5, 6)
    theirs.max_attempts = 5
    theirs.push_updates()
    with mine.next_job() as job:  # refreshes the experiment: its local change stays, and is used
        assert 5 <= job.hyperparameters["x"] < 6
    mine.add_job(hyperparameters={"x": 5.5})
    assert mine.distributions["x"] == schedy.random.Uniform(5, 6)
    with pytest.raises(UnsafeUpdateError):  # not pushed over the other process's change
        mine.push_updates()
    stored = db.get_experiment("R")
    assert stored.max_attempts == 5 and stored.distributions["x"] == schedy.random.Uniform(0, 1)
    unchanged = db.get_experiment("R")
    theirs.status = theirs.DONE
    theirs.push_updates()
    with pytest.raises(schedy.errors.NoJobError):  # an object without changes of its own follows the store
        unchanged.next_job()
    assert unchanged.status == unchanged.DONE


def test_params_set_to_the_wrong_kind_of_thing_are_clear_errors(tmp_path):
    db = schedy.SchedyDB(db=str(tmp_path))
    db.add_experiment(schedy.RandomSearch("R", {"x": schedy.random.Uniform(0, 1)}))
    db.add_experiment(schedy.PopulationBasedTraining("P", schedy.pbt.MINIMIZE, "loss", schedy.pbt.Truncate()))
    random_search, pbt = db.get_experiment("R"), db.get_experiment("P")
    random_search.distributions["y"] = (0, 1)
    pbt.explore = {"lr": 3}
    with pytest.raises(ValidationError, match=r"RandomSearch params: distribution of 'y' must come from schedy.random"):
        random_search.push_updates()
    with pytest.raises(ValidationError, match="must come from schedy.random"):
        random_search.next_job()
    with pytest.raises(ValidationError, match=r"PBT params cannot be made from this object: AttributeError"):
        pbt.push_updates()
    assert "cannot be made" in str(random_search) and "cannot be made" in str(pbt)
    assert db.get_experiment("R").distributions == {"x": schedy.random.Uniform(0, 1)}


def test_experiment_names_and_statuses_are_checked():
    with pytest.raises(ValidationError, match="must not be empty"):
        schedy.ManualSearch("")
    with pytest.raises(ValidationError, match="control character"):
        schedy.ManualSearch("a\nb")
    with pytest.raises(ValidationError, match="status must be one of"):
        schedy.ManualSearch("a", status="PAUSED")
    with pytest.raises(ValidationError, match="must come from schedy.random"):
        schedy.RandomSearch("a", {"x": 3})


def test_an_experiment_must_be_added_before_use():
    with pytest.raises(schedy.errors.ConfigError, match="was not added to a database"):
        schedy.ManualSearch("a").add_job(hyperparameters={})


def _nested(levels: int) -> list:
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value, message",
    [
        (_nested(64), "nested more than 64 levels deep"),
        (_nested(600), "nested more than 64 levels deep"),
        ("data\udcff.csv", "not valid Unicode"),
        ({"f\ud800": 1}, "not valid Unicode"),
        (10**400, "too large for a JSON number"),
        ([1, {"y": float("nan")}], "NaN"),
        ({1: "a", "1": "b"}, "keys 1 and '1', which JSON stores as one key '1'"),
    ],
)
def test_values_no_reader_could_use_are_refused_when_written(exp, value, message):
    with pytest.raises(ValidationError, match=message):
        exp.add_job(job_id="bad", hyperparameters={"x": value})
    job = exp.add_job(job_id="ok", hyperparameters={"x": 1})
    job.results["r"] = value
    with pytest.raises(ValidationError, match=message):
        job.put()
    with pytest.raises(ValidationError, match=message):
        job.report(1, r=value)
    assert [(j.job_id, j.results, j.history) for j in exp.all_jobs()] == [("ok", {}, [])]
    # 64 levels with the hyperparameters object itself: the most there may be.
    exp.add_job(job_id="deep enough", hyperparameters={"x": _nested(63)})
    assert exp.get_job("deep enough").hyperparameters == {"x": _nested(63)}


@pytest.mark.parametrize("stored_in_the_block", [False, True])
def test_a_job_the_block_prunes_is_stored_pruned_not_done(tmp_path, stored_in_the_block):
    db = schedy.SchedyDB(db=str(tmp_path))
    exp = StopAboveOne("Early")
    db.add_experiment(exp)
    for job_id, loss in (("bad", 5.0), ("good", 0.5)):
        exp.add_job(job_id=job_id, hyperparameters={"x": 1})
        with exp.next_job() as job:
            job.report(1, loss=loss)
            if job.should_stop():
                job.status = job.PRUNED
                if stored_in_the_block:
                    job.put()
    assert exp.get_job("bad").status == "PRUNED" and exp.get_job("good").status == "DONE"
    assert {status for job_id, status in exp.told if job_id == "bad"} == {"PRUNED"}


def test_results_that_cannot_be_stored_end_the_job_crashed_with_the_others(exp):
    exp.add_job(job_id="j", hyperparameters={"x": 1})
    with pytest.raises(ValidationError, match="results.loss is NaN"):
        with exp.next_job() as job:
            job.results["accuracy"] = 0.93
            job.results["loss"] = float("nan")
    stored = exp.get_job("j")
    assert stored.status == "CRASHED" and stored.results == {"accuracy": 0.93}
    assert "could not store the job: results.loss is NaN" in stored.error


def test_a_block_that_raises_with_unstorable_results_still_ends_crashed(exp):
    exp.add_job(job_id="j", hyperparameters={"x": 1})
    with pytest.raises(ZeroDivisionError):
        with exp.next_job() as job:
            job.results["loss"] = float("inf")
            1 / 0
    stored = exp.get_job("j")
    assert stored.status == "CRASHED" and stored.results == {}
    assert stored.error.startswith("ZeroDivisionError") and "results.loss is Infinity" in stored.error


def test_an_exception_whose_text_cannot_be_stored_still_ends_the_job_crashed(exp):
    import os

    exp.add_job(job_id="j", hyperparameters={"x": 1})
    with pytest.raises(ValueError):
        with exp.next_job() as job:
            job.results["loss"] = 0.1
            raise ValueError("cannot parse " + os.fsdecode(b"data\xff.csv"))  # a lone surrogate
    stored = exp.get_job("j")
    assert stored.status == "CRASHED" and stored.results == {"loss": 0.1}
    assert stored.error == "ValueError: cannot parse data\\udcff.csv"


@pytest.mark.parametrize("field, value", [("hyperparameters", {"lr": float("nan")}), ("history", "steps"), ("lineage", [1])])
def test_a_block_that_breaks_another_field_ends_crashed_with_it_as_stored(exp, field, value):
    exp.add_job(job_id="j", hyperparameters={"x": 1})
    with pytest.raises(ValidationError):
        with exp.next_job() as job:
            job.results["loss"] = 0.1
            setattr(job, field, value)
    stored = exp.get_job("j")
    assert stored.status == "CRASHED" and stored.results == {"loss": 0.1}
    assert (stored.hyperparameters, stored.history, stored.lineage) == ({"x": 1}, [], {})
    assert "could not store the job" in stored.error


def test_names_and_lookups_of_the_wrong_kind_are_clear_errors(exp, tmp_path):
    db = schedy.SchedyDB(db=str(tmp_path))
    for bad in (None, 1, ["E"], "\ud800"):
        with pytest.raises(ValidationError):
            db.get_experiment(bad)
        with pytest.raises(ValidationError):
            exp.get_job(bad)
    with pytest.raises(ValidationError, match="lone surrogate"):
        schedy.ManualSearch("\ud800")
    for bad in ([], "x", 0):
        with pytest.raises(ValidationError, match="hyperparameters must be a dict"):
            exp.add_job(hyperparameters=bad)
    assert list(exp.all_jobs()) == []


def test_a_deleted_experiment_takes_no_new_jobs(tmp_path):
    db = schedy.SchedyDB(db=str(tmp_path))
    db.add_experiment(schedy.ManualSearch("E"))
    exp = db.get_experiment("E")
    exp.delete()
    with pytest.raises(ResourceNotFoundError):
        exp.add_job(job_id="k", status="DONE", results={"r": 1})
    db.add_experiment(schedy.ManualSearch("E"))
    with pytest.raises(ResourceNotFoundError, match="deleted"):
        exp.add_job(job_id="k", status="DONE", results={"r": 1})
    assert list(db.get_experiment("E").all_jobs()) == []
    assert not list((tmp_path / "jobs").rglob("*.json"))


def test_a_name_never_encodes_to_the_shortened_form_of_another(tmp_path):
    from schedy.names import encode_segment

    db = schedy.SchedyDB(db=str(tmp_path))
    long_name = "y" * 190
    look_alike = encode_segment(long_name)  # what the long name is stored under: "yyy...~~<hash>"
    assert "~~" in look_alike and len(look_alike) < 200
    db.add_experiment(schedy.ManualSearch(long_name))
    db.add_experiment(schedy.ManualSearch(look_alike))
    assert db.get_experiment(long_name).name == long_name
    assert db.get_experiment(look_alike).name == look_alike
    db.get_experiment(look_alike).add_job(job_id="x~~y", hyperparameters={"x": 1})
    assert [j.job_id for j in db.get_experiment(look_alike).all_jobs()] == ["x~~y"]
    assert list(db.get_experiment(long_name).all_jobs()) == []


def test_settings_and_store_urls_out_of_range_are_refused(exp, tmp_path, monkeypatch):
    from schedy.errors import ConfigError

    exp.lease_seconds = 1e20
    with pytest.raises(ValidationError, match="leaseSeconds"):
        exp.push_updates()
    monkeypatch.setenv("SCHEDY_LEASE_SECONDS", "1e20")
    exp.add_job(hyperparameters={})
    with pytest.raises(ConfigError, match="at most 1e9"):
        schedy.SchedyDB(db=str(tmp_path)).get_experiment("E").next_job()
    monkeypatch.chdir(tmp_path)
    for bad in (b"/tmp/x", 5, "a\x00b"):
        with pytest.raises(ConfigError):
            schedy.SchedyDB(db=bad)
    with pytest.raises(ConfigError):
        schedy.SchedyDB(config_override={"db": ["a"]})
    made = {p.name for p in tmp_path.iterdir()}
    assert not made & {"b'", "5", "['a']"}, made  # no store made from str() of the mistake


def test_names_set_after_construction_are_checked_when_written(exp):
    job = exp.add_job(hyperparameters={})
    job.job_id = "\ud800"
    with pytest.raises(ValidationError, match="lone surrogate"):
        job.put()
    job.job_id = None
    with pytest.raises(ValidationError, match="job id must be a string"):
        job.put()
    exp.name = 5
    with pytest.raises(ValidationError, match="experiment name must be a string"):
        exp.push_updates()
    with pytest.raises(ValidationError, match="takes an experiment"):
        schedy.SchedyDB(db=str(exp._require_db().storage.url)).add_experiment("E2")


def test_values_whose_item_is_themselves_are_refused_not_recursed(exp):
    class Odd:
        def item(self):
            return self

    with pytest.raises(ValidationError, match="x is a Odd, which JSON cannot store"):
        exp.add_job(hyperparameters={"x": Odd()})


def test_a_retry_of_the_longest_job_id_has_a_valid_id(exp):
    from schedy.experiment import SchedulerContext
    from schedy.names import NAME_MAX, check_name

    crashed = {"id": "j" * NAME_MAX, "hyperparameters": {"x": 1}, "attempt": 1, "lineage": {}}
    proposal = exp.retry(SchedulerContext(exp, exp._require_db().storage, "new"), crashed)
    assert check_name("job id", proposal.job_id).endswith("-2") and len(proposal.job_id) == NAME_MAX
    assert proposal.lineage["retryOf"] == crashed["id"]
    # Two long ids that differ only where the retry's id is cut get a retry each.
    other = {**crashed, "id": "j" * (NAME_MAX - 1) + "k"}
    other_proposal = exp.retry(SchedulerContext(exp, exp._require_db().storage, "new"), other)
    assert other_proposal.job_id != proposal.job_id and len(check_name("job id", other_proposal.job_id)) == NAME_MAX
