"""A write the service made is answered as a success when the scheduler's bookkeeping
after it fails (here: a file where PBT's state directory should be)."""

import os
import shutil

import requests

import schedy
API = "/api/v1"


def _break_state(store: str) -> None:
    state = os.path.join(store, "state")
    assert os.path.isdir(state)
    shutil.rmtree(state)
    with open(state, "w") as f:
        f.write("in the way")


def test_a_job_the_scheduler_cannot_record_is_still_a_written_job(http_service):
    db = schedy.SchedyDB(db=http_service.url)
    db.add_experiment(schedy.PopulationBasedTraining(
        "P", schedy.pbt.MINIMIZE, "loss", exploit=schedy.pbt.Truncate(), explore={"lr": schedy.pbt.Perturb()},
        initial_distributions={"lr": schedy.random.LogUniform(1e-3, 1e-1)}, population_size=4))
    exp = db.get_experiment("P")
    exp.add_job(job_id="queued", hyperparameters={"lr": 0.2})
    job = exp.next_job()
    assert job.job_id == "queued"
    _break_state(http_service.store)

    # A finished job created through the API: 201, not the scheduler's 503.
    doc = {"id": "hand", "experiment": "P", "status": "DONE", "hyperparameters": {"lr": 0.3}, "results": {"loss": 3.0}}
    answer = requests.put(
        f"{http_service.url}{API}/experiments/P/jobs/hand", json=doc, timeout=10,
        headers={"Authorization": f"Bearer {http_service.token}", "If-None-Match": "*"},
    )
    assert answer.status_code == 201, answer.text
    assert answer.headers["ETag"] == f"\"{exp.get_job('hand').etag}\""

    # A worker ending its job: DONE, stored once, no error.
    with job:
        job.results["loss"] = 2.0
    stored = exp.get_job("queued")
    assert (stored.status, stored.results, stored.etag) == ("DONE", {"loss": 2.0}, job.etag)

    http_service.log.flush()
    with open(http_service.log.name, encoding="utf-8") as f:
        log = f.read()
    assert "job 'hand' of experiment 'P': the scheduler could not record it" in log
    assert "job 'queued' of experiment 'P': the scheduler could not record it" in log
