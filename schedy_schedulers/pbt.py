"""Population Based Training: each worker decides what runs next when it calls ``next_job``.

A job is one training slice of one population member at one generation. The scheduler
keeps one state document per member (``member-<index>``) naming the member's latest
slice and, for a slice it proposed, everything needed to create it again (so a worker
that dies between deciding and creating loses nothing). Deciding reads the member
documents and each member's latest job, and for a member ahead of the one deciding the
slice it would hand over (its parents, back to the decider's generation); members still
running that generation or behind it are not ranked (they have no model of its age to
hand over). Its cost grows with the population and with how far members run ahead of
each other, never with the history of finished generations behind them.

Exactly one successor per slice: a member advances by an If-Match update of its
document, and the successor's id (``m<index>-g<generation>``) is deterministic, so a
racing worker's duplicate creation is refused.

Lineage of a job (``job.lineage``): ``member``, ``generation``, ``parent`` (the slice it
continues), ``donor`` (the slice whose model and hyperparameters it copied, when it
exploited), ``explore`` (hyperparameter -> move, e.g. ``{"lr": {"perturb": 1.13}}``)
and ``retryOf`` for the retry of a crashed slice.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from schedy import jsonio, schema
from schedy.errors import (
    CorruptDocumentError,
    ResourceExistsError,
    ResourceNotFoundError,
    UnsafeUpdateError,
    ValidationError,
)
from schedy.claims import LEASE_EXPIRED
from schedy.experiment import Experiment, Proposal, SchedulerContext
from schedy.hookspecs import hookimpl
from schedy.names import check_name, suffixed_id
from schedy.pbt import (
    MAXIMIZE,
    MINIMIZE,
    OBJECTIVES,
    ExploitStrategy,
    ExploreStrategy,
    Perturb,
    Resample,
    Truncate,
    exploit_from_wire,
    explore_from_wire,
)
from schedy.random import Distribution, from_cli, from_wire_map

_ROUNDS = 16
#: A member's state document (``member-<index>``), checked when read: one edited by hand
#: must be named, not fail deep inside a decision.
MEMBER_STATE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:schedy:scheduler:PBT:member",
    "type": "object",
    "required": ["member", "generation", "job", "proposal"],
    "properties": {
        "member": {"type": "string"},
        "generation": {"type": "integer", "minimum": 0},
        "job": {"type": "string", "minLength": 1},
        "proposal": {
            "type": ["object", "null"],
            "required": ["hyperparameters", "results", "lineage"],
            "properties": {
                "hyperparameters": {"type": "object"},
                "results": {"type": "object"},
                "lineage": {"type": "object"},
                "attempt": {"type": "integer", "minimum": 1},
            },
        },
    },
}
# What _job_id and _retry_state name; a hand-made job under such an id would stand in for a slice.
_SLICE_ID = re.compile(r"m[0-9]{3,}-g[0-9]{3,}(-a[0-9]+)?")


@dataclass
class _Member:
    """A member as one decision sees it: its state document and its latest slice."""

    key: str
    index: int
    state: dict
    etag: str
    job: dict | None

    @property
    def generation(self) -> int:
        return self.state["generation"]


class PopulationBasedTraining(Experiment):
    """Population Based Training (Jaderberg et al., 2017) over a population of models.

    A job is one slice of training of one member; its results carry the model pointer
    (e.g. ``job.results["model_path"]``). ``next_job()`` hands out, in order: queued jobs;
    a new member drawn from ``initial_distributions`` while the population is smaller
    than ``population_size``; the retry of a crashed slice; else the successor of a
    member whose latest slice is DONE (lowest generation first). A member ranked in the
    bottom (``exploit``) of the members that finished its generation copies the
    hyperparameters and results (the model) of a better one's slice of that generation
    and explores them (``explore``); otherwise its successor goes on with its own, so a
    model's age is its generation (unless a member's slice crashed out or was pruned
    and it copied no one: it then goes on from its last finished slice). Jobs added by
    hand join the population when they finish (they need the hyperparameters named in
    ``explore``, and an id not of the form the slices have, ``m<member>-g<generation>``).

    Args:
        name: name of the experiment.
        objective: ``schedy.pbt.MINIMIZE`` or ``schedy.pbt.MAXIMIZE``.
        result_name: the result to optimize, e.g. ``"max_accuracy"``.
        exploit: exploit strategy, e.g. ``schedy.pbt.Truncate()``.
        explore: hyperparameter -> explore strategy, e.g. ``{"lr": schedy.pbt.Perturb()}``.
        initial_distributions: hyperparameter -> :mod:`schedy.random` distribution of
            new members; also the range explored values stay in and what a resampling
            move redraws from.
        population_size: the size of the population: members are drawn from
            ``initial_distributions`` while it has fewer (jobs added by hand that
            joined count among them; None: the population is only those jobs).
        status: ``Experiment.RUNNING`` or ``Experiment.DONE``.
        max_generations: slices per member; then ``next_job()`` raises ``NoJobError``
            and the experiment becomes DONE (once no job added by hand, which joins
            the population when it ends, is queued, running or yet to join).

    Example:
        >>> import schedy
        >>> exp = PopulationBasedTraining("Demo", schedy.pbt.MAXIMIZE, "accuracy",
        ...     exploit=schedy.pbt.Truncate(), explore={"lr": schedy.pbt.Perturb()},
        ...     initial_distributions={"lr": schedy.random.LogUniform(1e-4, 1e-1)},
        ...     population_size=4, max_generations=10)
        >>> exp.get_params()["exploit"], exp.get_params()["numParallel"]
        ({'truncate': 0.2}, 4)
    """

    SCHEDULER_NAME = "PBT"
    CLI_NAME = "pbt"
    CLI_USAGE = (
        "pbt min|max RESULT_NAME [truncate PROPORTION] [perturb HP [MIN_FACTOR MAX_FACTOR]]... "
        "[resample HP]... [init HP DIST PARAMS_JSON]... [population N] [generations N]"
    )
    PARAMS_SCHEMA = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:schedy:scheduler:PBT",
        "title": "PBT scheduler params",
        "type": "object",
        "required": ["objective", "qualityResultName", "exploit"],
        "additionalProperties": False,
        "properties": {
            "objective": {"enum": list(OBJECTIVES)},
            "qualityResultName": {"type": "string", "minLength": 1},
            "exploit": {
                "type": "object",
                "required": ["truncate"],
                "additionalProperties": False,
                "properties": {"truncate": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5}},
            },
            "explore": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "minProperties": 1,
                    "maxProperties": 1,
                    "additionalProperties": False,
                    "properties": {
                        "perturb": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "minFactor": {"type": "number", "exclusiveMinimum": 0},
                                "maxFactor": {"type": "number", "exclusiveMinimum": 0},
                                "resampleProbability": {"type": "number", "minimum": 0, "maximum": 1},
                            },
                        },
                        "resample": {"type": "object", "maxProperties": 0},
                    },
                },
            },
            "init": {"$ref": "urn:schedy:distribution#/$defs/distributions"},
            "numParallel": {"type": ["integer", "null"], "minimum": 1},
            "maxGenerations": {"type": ["integer", "null"], "minimum": 1},
            "max_generations": {
                "description": "Read for compatibility; written as maxGenerations.",
                "type": ["integer", "null"],
                "minimum": 1,
            },
        },
    }

    def __init__(
        self,
        name: str,
        objective: str,
        result_name: str,
        exploit: ExploitStrategy,
        explore: dict | None = None,
        initial_distributions: dict | None = None,
        population_size: int | None = None,
        status: str = Experiment.RUNNING,
        max_generations: int | None = None,
    ):
        super().__init__(name, status)
        if objective not in OBJECTIVES:
            raise ValidationError(f"objective must be schedy.pbt.MINIMIZE or MAXIMIZE ('min' or 'max'), not {objective!r}")
        if not isinstance(result_name, str) or not result_name:
            raise ValidationError(f"result_name must be a non-empty string, not {result_name!r}")
        if not isinstance(exploit, ExploitStrategy):
            raise ValidationError(f"exploit must be a schedy.pbt exploit strategy such as Truncate(), not {exploit!r}")
        explore = {} if explore is None else explore
        initial_distributions = {} if initial_distributions is None else initial_distributions
        if not isinstance(explore, dict) or not all(isinstance(s, ExploreStrategy) for s in explore.values()):
            raise ValidationError("explore must be a dict of hyperparameter: schedy.pbt explore strategy (e.g. Perturb())")
        if not isinstance(initial_distributions, dict) or not all(
            isinstance(d, Distribution) for d in initial_distributions.values()
        ):
            raise ValidationError("initial_distributions must be a dict of hyperparameter: schedy.random distribution")
        for what, value in (("population_size", population_size), ("max_generations", max_generations)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValidationError(f"{what} must be a positive integer or None, not {value!r}")
        if population_size is not None and not initial_distributions:
            raise ValidationError("population_size needs initial_distributions to draw the members from")
        self.objective = objective
        self.result_name = result_name
        self.exploit = exploit
        self.explore = dict(explore)
        self.initial_distributions = dict(initial_distributions)
        self.population_size = population_size
        self.max_generations = max_generations

    # -- wire format
    def get_params(self) -> dict:
        params: dict[str, Any] = {
            "objective": self.objective,
            "qualityResultName": self.result_name,
            "exploit": self.exploit.to_wire(),
            "explore": {hp: s.to_wire() for hp, s in self.explore.items()},
            "init": {hp: d.to_wire() for hp, d in self.initial_distributions.items()},
        }
        if self.population_size is not None:
            params["numParallel"] = self.population_size
        if self.max_generations is not None:
            params["maxGenerations"] = self.max_generations
        return params

    @classmethod
    def from_params(cls, name: str, status: str, params: dict) -> "PopulationBasedTraining":
        max_generations = params.get("maxGenerations", params.get("max_generations"))
        return cls(
            name,
            params["objective"],
            params["qualityResultName"],
            exploit=exploit_from_wire(params["exploit"]),
            explore={hp: explore_from_wire(d, f"explore.{hp}") for hp, d in params.get("explore", {}).items()},
            initial_distributions=from_wire_map(params.get("init", {}), "init"),
            population_size=params.get("numParallel"),
            status=status,
            max_generations=max_generations,
        )

    @classmethod
    def from_cli(cls, name: str, status: str, args: list[str]) -> "PopulationBasedTraining":
        """``pbt max accuracy truncate 0.2 perturb lr init lr loguniform '{"low": 1e-4, "high": 0.1}' population 8``."""
        if len(args) < 2:
            raise ValidationError(f"usage: {cls.CLI_USAGE}")
        objective, result_name, rest = args[0], check_name("result name", args[1]), list(args[2:])
        exploit: ExploitStrategy = Truncate()
        explore: dict[str, ExploreStrategy] = {}
        init: dict[str, Distribution] = {}
        counts: dict[str, int | None] = {"population": None, "generations": None}

        def take(n: int, word: str) -> list[str]:
            if len(rest) < n:
                raise ValidationError(f"pbt: {word} needs {n} argument(s); usage: {cls.CLI_USAGE}")
            taken = rest[:n]
            del rest[:n]
            return taken

        given: set[str] = set()

        def once(what: str) -> None:
            # A second setting of the same thing would silently replace the first.
            if what in given:
                raise ValidationError(f"pbt: {what} is given twice")
            given.add(what)

        while rest:
            word = rest.pop(0)
            if word in ("truncate", *counts):
                once(word)
            if word == "truncate":
                exploit = Truncate(_cli_number(take(1, word)[0], "truncate proportion"))
            elif word == "perturb":
                (hp,) = take(1, word)
                check_name("hyperparameter name", hp)
                once(f"the explore strategy of {hp!r}")
                factors = []
                while len(factors) < 2 and rest and _is_number(rest[0]):
                    factors.append(_cli_number(rest.pop(0), "perturb factor"))
                if len(factors) == 1:
                    raise ValidationError(f"pbt: perturb {hp} takes both MIN_FACTOR and MAX_FACTOR, or neither")
                explore[hp] = Perturb(*factors)
            elif word == "resample":
                (hp,) = take(1, word)
                check_name("hyperparameter name", hp)
                once(f"the explore strategy of {hp!r}")
                explore[hp] = Resample()
            elif word == "init":
                hp, dist_name, params_text = take(3, word)
                once(f"the initial distribution of {hp!r}")
                init[hp] = from_cli(hp, dist_name, params_text)
            elif word in counts:
                text = take(1, word)[0]
                if not text.isascii() or not text.isdigit() or len(text) > 9:  # (int() takes "1_0" and " 10")
                    raise ValidationError(f"pbt: {word} must be a whole number below 10^9, not {text!r}")
                counts[word] = int(text)
            else:
                raise ValidationError(f"pbt: unexpected {word!r}; usage: {cls.CLI_USAGE}")
        return cls(
            name,
            objective,
            result_name,
            exploit=exploit,
            explore=explore,
            initial_distributions=init,
            population_size=counts["population"],
            status=status,
            max_generations=counts["generations"],
        )

    def check_hyperparameters(self, hyperparameters: dict) -> None:
        missing = sorted(set(self.explore) - set(hyperparameters))
        if missing:
            raise ValidationError(
                f"jobs of PBT experiment {self.name!r} need the explored hyperparameters: missing {', '.join(missing)}"
            )

    def check_job_id(self, job_id: str) -> None:
        if _SLICE_ID.fullmatch(job_id):
            raise ValidationError(
                f"job id {job_id!r} has the form of a slice id (m<member>-g<generation>), "
                f"which PBT experiment {self.name!r} keeps for its own slices"
            )

    # -- reading the population
    def _members(self, ctx: SchedulerContext) -> list[_Member]:
        members = []
        while True:
            key = f"member-{len(members)}"
            state = ctx.storage.get_state(ctx.ref, key)
            if state is None:
                return members
            try:
                schema.check(state.doc, MEMBER_STATE_SCHEMA, f"state {key!r} of experiment {self.name!r}")
            except ValidationError as e:
                raise CorruptDocumentError(f"stored {e}") from None
            job = None
            try:
                job = ctx.storage.get_job(ctx.ref, state.doc["job"]).doc
            except ResourceNotFoundError:
                pass
            members.append(_Member(key, len(members), state.doc, state.etag, job))

    def _crashed_out(self, job: dict) -> bool:
        return job["status"] == "CRASHED" and job.get("attempt", 1) >= self.max_attempts

    def _slice_score(self, job: dict) -> float:
        """The oriented result of one slice (higher is better); -inf unless it is DONE with
        a number (a PRUNED or crashed-out slice ranks last)."""
        value = job["results"].get(self.result_name)
        if job["status"] != "DONE" or not jsonio.finite_number(value):
            return -math.inf
        return value if self.objective == MAXIMIZE else -value

    def _handed(self, ctx: SchedulerContext, members: list[_Member], target: _Member) -> dict[str, dict]:
        """The slice each other member would hand over to ``target``, deciding at its
        generation, by member key: its DONE slice of that very generation. A member still
        running it, behind it, or ahead of it without it (crashed out, pruned) has none to
        hand over and is left out: a copied model is as old as the copier's own, so a
        model's age stays its generation."""
        generation, handed = target.generation, {}
        for m in members:
            if m is target or m.job is None or m.generation < generation:
                continue
            if m.generation == generation:
                slice_ = m.job
            else:
                slice_ = self._finished_slice(ctx, m, generation)
            if slice_["status"] == "DONE" and _generation(slice_) == generation:
                handed[m.key] = slice_
        return handed

    def _ranking(self, members: list[_Member], target: _Member, handed: dict[str, dict]) -> list[_Member]:
        """The members ranked for ``target``'s decision: the target by its latest slice,
        the others by the slice they would hand over (``handed``), so that a donor never
        gives a model worse or older than the one it was ranked by."""
        scored = [(self._slice_score(target.job), target)]
        scored += [(self._slice_score(handed[m.key]), m) for m in members if m.key in handed]
        return [m for _, m in sorted(scored, key=lambda p: (-p[0], p[1].index))]

    def _finished_slice(self, ctx: SchedulerContext, member: _Member, generation: int | None = None) -> dict:
        """The member's latest DONE slice (the running one's parent while it runs), and
        not past ``generation``: a donor ahead of the member that copies it hands over
        the model it had at the member's generation, so a model's age stays its
        generation."""
        job = member.job
        assert job is not None
        while job["status"] != "DONE" or (generation is not None and _generation(job) > generation):
            parent = _parent(job)
            try:
                job = ctx.storage.get_job(ctx.ref, parent).doc if parent else None
            except ResourceNotFoundError:
                job = None
            if job is None:
                return member.job
        return job

    # -- deciding
    def suggest(self, ctx: SchedulerContext) -> Proposal | None:
        for _ in range(_ROUNDS):
            members = self._members(ctx)
            # A decision stored by a worker that died before creating its job.
            for m in members:
                if m.job is None and m.state.get("proposal"):
                    return _proposal(m.state)
            if self.population_size is not None and len(members) < self.population_size:
                proposal = self._new_member(ctx, len(members))
                if proposal is not None:
                    return proposal
                continue
            live = [m for m in members if m.job is not None]
            crashed = [m for m in live if m.job["status"] == "CRASHED" and not self._crashed_out(m.job)]
            ready = [
                m
                for m in live
                if (m.job["status"] in ("DONE", "PRUNED") or self._crashed_out(m.job))
                and (self.max_generations is None or m.generation + 1 < self.max_generations)
            ]
            if crashed:
                target, state = crashed[0], self._retry_state(crashed[0])
            elif ready:
                target = min(ready, key=lambda m: (m.generation, m.index))
                handed = self._handed(ctx, live, target)
                state = self._successor_state(ctx, target, self._ranking(live, target, handed), handed)
            else:
                self._finish_if_over(ctx, members)
                return None
            try:
                ctx.storage.put_state(ctx.ref, target.key, state, target.etag)
            except (UnsafeUpdateError, ResourceNotFoundError):
                continue  # another worker advanced this member first: look again
            return _proposal(state)
        return None

    def _new_member(self, ctx: SchedulerContext, index: int) -> Proposal | None:
        job_id = _job_id(index, 0)
        rng = ctx.rng(job_id)
        hyperparameters = {hp: dist.sample(rng) for hp, dist in self.initial_distributions.items()}
        state = _state(index, 0, job_id, hyperparameters, {}, {"member": _member_id(index), "generation": 0})
        try:
            ctx.storage.put_state(ctx.ref, f"member-{index}", state, None, create=True)
        except ResourceExistsError:
            return None
        return _proposal(state)

    def _retry_state(self, member: _Member) -> dict:
        job = member.job
        assert job is not None
        attempt = job.get("attempt", 1) + 1
        start = member.state.get("proposal") or {"hyperparameters": job["hyperparameters"], "results": job["results"]}
        base = job.get("lineage", {}).get("retryOf") or job["id"]  # the first attempt
        lineage = {**job.get("lineage", {}), "retryOf": base}
        lineage.update(member=_member_id(member.index), generation=member.generation)
        state = _state(member.index, member.generation, suffixed_id(base, f"-a{attempt}"), start["hyperparameters"], start["results"], lineage)
        state["proposal"]["attempt"] = attempt
        state["proposal"]["seed"] = job.get("seed")  # a retry runs with the seed of the job it retries
        return state

    def _successor_state(
        self, ctx: SchedulerContext, member: _Member, ranking: list[_Member], handed: dict[str, dict]
    ) -> dict:
        generation = member.generation + 1
        job_id = _job_id(member.index, generation)
        rng = ctx.rng(job_id)
        own = self._finished_slice(ctx, member)
        lineage: dict[str, Any] = {"member": _member_id(member.index), "generation": generation, "parent": member.job["id"]}
        hyperparameters, results = own["hyperparameters"], own["results"]
        donor_key = self.exploit.donor([m.key for m in ranking], member.key, rng)
        donor = handed.get(donor_key) if donor_key != member.key else None  # the slice it was ranked by
        if donor is not None:
            lineage["donor"] = donor["id"]
            hyperparameters, results = dict(donor["hyperparameters"]), donor["results"]
            moves = {}
            for hp, strategy in self.explore.items():
                if hp in hyperparameters:
                    hyperparameters[hp], move = strategy.explore(
                        hyperparameters[hp], self.initial_distributions.get(hp), rng
                    )
                    if move:
                        moves[hp] = move
            lineage["explore"] = moves
        return _state(member.index, generation, job_id, hyperparameters, results, lineage)

    def _finish_if_over(self, ctx: SchedulerContext, members: list[_Member]) -> None:
        """Mark the experiment DONE once every member finished its last generation, and no
        job added by hand (which joins the population when it ends) is queued, running or
        finished but not joined yet."""
        if self.max_generations is None or not members:
            return
        for m in members:
            if m.job is None:
                continue
            done = m.job["status"] in ("DONE", "PRUNED") or self._crashed_out(m.job)
            if not done or m.generation + 1 < self.max_generations:
                return
        # Markers, not a listing of the jobs: they hold only the jobs still to run.
        pending = [job_id for _, job_id in ctx.storage.queued(ctx.ref, 1000)]
        pending += [lease.job_id for lease in ctx.storage.leases(ctx.ref)]
        if any(job_id and not _SLICE_ID.fullmatch(job_id) for job_id in pending):
            return
        # A job added by hand joins after it is stored finished, its lease marker gone: one
        # whose worker is between the two is still to join. Read once, when all else says over.
        if any(self._yet_to_join(ctx, versioned.doc) for versioned in ctx.jobs()):
            return
        experiment = ctx.experiment
        experiment.status = Experiment.DONE
        try:
            experiment.push_updates()
        except (UnsafeUpdateError, ResourceNotFoundError):
            pass  # another worker marked it, or it changed: the next call looks again

    # -- hand-made jobs join the population
    @staticmethod
    def _yet_to_join(ctx: SchedulerContext, doc: dict) -> bool:
        """Whether ``doc``, a job, is a finished job added by hand that has not joined yet."""
        if doc["status"] not in ("DONE", "CRASHED", "PRUNED") or "member" in doc.get("lineage", {}):
            return False
        if doc["status"] == "CRASHED" and str(doc.get("error")).startswith(LEASE_EXPIRED):
            return False  # its worker died: it comes back as a retry, not as a member
        return ctx.storage.get_state(ctx.ref, f"joined-{doc['id']}") is None

    def on_job_finished(self, ctx: SchedulerContext, doc: dict) -> None:
        if "member" in doc.get("lineage", {}):
            return
        try:
            ctx.storage.put_state(ctx.ref, f"joined-{doc['id']}", {"job": doc["id"]}, None, create=True)
        except ResourceExistsError:
            return  # joined already
        while True:
            index = len(self._members(ctx))
            state = {"member": _member_id(index), "generation": 0, "job": doc["id"], "proposal": None}
            try:
                ctx.storage.put_state(ctx.ref, f"member-{index}", state, None, create=True)
                return
            except ResourceExistsError:
                continue

    def retry(self, ctx: SchedulerContext, crashed: dict) -> Proposal | None:
        # A slice whose worker died is retried by suggest(), like one that raised.
        if "member" in crashed.get("lineage", {}):
            return None
        return super().retry(ctx, crashed)


def _generation(job: dict) -> int:
    """The generation a job's lineage gives; 0 if it gives no whole number >= 0 (a job
    added by hand may say anything)."""
    value = job.get("lineage", {}).get("generation")
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _parent(job: dict) -> str | None:
    """The slice a job continues, if its lineage names one (a job added by hand may say anything)."""
    value = job.get("lineage", {}).get("parent")
    return value if isinstance(value, str) and value else None


def _member_id(index: int) -> str:
    return f"m{index:03d}"


def _job_id(index: int, generation: int) -> str:
    return f"{_member_id(index)}-g{generation:03d}"


def _state(index: int, generation: int, job_id: str, hyperparameters: dict, results: dict, lineage: dict) -> dict:
    return {
        "member": _member_id(index),
        "generation": generation,
        "job": job_id,
        "proposal": {
            "hyperparameters": hyperparameters,
            "results": results,
            "lineage": lineage,
            "attempt": 1,
        },
    }


def _proposal(state: dict) -> Proposal:
    p = state["proposal"]
    return Proposal(
        hyperparameters=dict(p["hyperparameters"]),
        job_id=state["job"],
        results=dict(p["results"]),
        lineage=dict(p["lineage"]),
        attempt=p.get("attempt", 1),
        seed=p.get("seed"),
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _cli_number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValidationError(f"pbt: {what} must be a number, not {text!r}") from None
    return int(value) if value.is_integer() and "." not in text else value


@hookimpl
def register_schedulers(register):
    register(PopulationBasedTraining)


__all__ = ["PopulationBasedTraining", "MINIMIZE", "MAXIMIZE"]
