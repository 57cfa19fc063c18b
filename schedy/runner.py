"""Running a command for each job: the engine of ``schedy run``.

The command needs no Schedy import. It gets the job through its arguments and its
environment, and gives back results on its standard output (or in a file):

- arguments: ``%e`` the experiment, ``%j`` the job id, ``%h`` the hyperparameters as
  ``--name value`` pairs (underscores become hyphens, null values skipped, a value
  starting with '-' given as ``--name=value``; a name that is empty or holds '=' or
  white space cannot be an option and its job ends CRASHED), ``%%`` a
  percent sign, ``{name}`` the value of hyperparameter ``name`` as it is (other braces
  stay as written), while ``%h`` inside a longer argument is quoted for a shell: a
  command run through a shell should take ``%h`` or ``SCHEDY_HYPERPARAMETERS``, since
  ``{name}`` there is shell code that anyone who can queue a job chooses;
- environment: ``SCHEDY_EXPERIMENT``, ``SCHEDY_JOB_ID``, ``SCHEDY_HYPERPARAMETERS``
  (JSON), ``SCHEDY_RESULTS_FILE`` (a path the command may write a JSON object to) and
  ``SCHEDY_DB``;
- standard output: a ``--- RESULTS ---`` line followed by a JSON object, on the same
  line or the next ones (what follows the object is ordinary output; a
  ``--- END RESULTS ---`` line may close the block); of several blocks, the last counts;
  ``--- REPORT --- {"step": 3, "loss": 0.2}`` lines record progress (``Job.report``);
  after each, a scheduler that stops jobs early (``should_stop``) may stop the command,
  and the job ends PRUNED.

Example:
    >>> expand_args(["train.py", "%h", "--seed={seed}", "--out=%e/%j", "100%%"],
    ...             "E", "j1", {"learning_rate": 0.1, "seed": 3, "note": None})
    ['train.py', '--learning-rate', '0.1', '--seed', '3', '--seed=3', '--out=E/j1', '100%']
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from .cli.render import printable
from .errors import LeaseLostError, NoJobError, SchedyError, ValidationError

if TYPE_CHECKING:
    from .experiment import Experiment
    from .job import Job

RESULTS_MARK = "--- RESULTS ---"
END_RESULTS_MARK = "--- END RESULTS ---"
REPORT_MARK = "--- REPORT ---"
#: How much of a failed command's standard error is kept in the job's error.
STDERR_TAIL_CHARS = 2000
#: A command that outlives SIGTERM this long gets SIGKILL.
KILL_GRACE_SECONDS = 5.0
#: How long the output of a command that exited may stay open (held by processes it left behind).
OUTPUT_GRACE_SECONDS = 2.0
#: What stops ``schedy run`` as SIGTERM does; SIGHUP: the terminal it ran in was closed.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name))
_MAX_WAIT_SECONDS = 30.0
#: ``%e``, ``%j``, ``%h``, ``%%`` and ``{name}``, in one pass so that substituted values are never expanded again.
_TEMPLATE = re.compile(r"%([ejh%])|\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: What a hyperparameter's name given as ``--name`` by ``%h`` must not hold: argparse would
#: split it at '=', and a name with white space is no option any parser reads.
_NOT_IN_OPTION = re.compile(r"[=\s]")


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def hyperparameter_args(hyperparameters: dict) -> list[str]:
    """``--name value`` pairs; underscores in names become hyphens, null values are skipped,
    and a value starting with '-' is given as one ``--name=value`` argument (as a separate
    argument, argparse reads ``--fast`` or ``-1e-05`` as an option). A name that cannot be
    an option (empty, or with '=' or white space), or two names giving one option
    (``batch_size`` and ``batch-size``: the command would read only the last), raise
    ValueError.

    Example:
        >>> hyperparameter_args({"batch_size": 32, "act": "relu", "drop": None, "deep": True})
        ['--batch-size', '32', '--act', 'relu', '--deep', 'true']
        >>> hyperparameter_args({"flags": "--fast", "lr": -1e-05})
        ['--flags=--fast', '--lr=-1e-05']
    """
    args = []
    given: dict[str, str] = {}
    for name, value in hyperparameters.items():
        if value is None:
            continue
        if not name or _NOT_IN_OPTION.search(name):
            raise ValueError(f"%h cannot give the hyperparameter {name!r} as an option (an empty name, '=' "
                             "or white space): read it from SCHEDY_HYPERPARAMETERS")
        option, text = "--" + name.replace("_", "-"), _text(value)
        if option in given:
            raise ValueError(f"%h cannot give both hyperparameters {given[option]!r} and {name!r}: both would be "
                             f"{option}; read them from SCHEDY_HYPERPARAMETERS")
        given[option] = name
        if text.startswith("-"):
            args.append(f"{option}={text}")
        else:
            args += [option, text]
    return args


def expand_args(args: list[str], experiment: str, job_id: str, hyperparameters: dict) -> list[str]:
    """The command line for one job (see the module docstring); ValueError if ``%h`` is
    used and a hyperparameter's name cannot be an option."""
    percent = {"e": experiment, "j": job_id, "%": "%"}

    def substitute(match: re.Match) -> str:
        key = match.group(1)
        if key == "h":
            return shlex.join(hyperparameter_args(hyperparameters))
        if key:
            return percent[key]
        name = match.group(2)
        return _text(hyperparameters[name]) if name in hyperparameters else match.group(0)

    expanded: list[str] = []
    for arg in args:
        if arg == "%h":
            expanded += hyperparameter_args(hyperparameters)
        else:
            expanded.append(_TEMPLATE.sub(substitute, arg))
    return expanded


class OutputParser:
    """Reads a command's standard output line by line: results block and report lines.

    Example:
        >>> parser = OutputParser()
        >>> for line in ['epoch 1', '--- REPORT --- {"step": 1, "loss": 0.5}', '--- RESULTS ---',
        ...              '{"loss":', ' 0.25}', '--- END RESULTS ---']:
        ...     report = parser.feed(line)
        ...     if report: print(report)
        {'step': 1, 'loss': 0.5}
        >>> parser.results()
        {'loss': 0.25}
    """

    def __init__(self) -> None:
        self._block: list[str] | None = None
        self._blocks: list[str] = []

    def feed(self, line: str) -> dict | None:
        """Take one line (without its newline); return a progress report if it is one."""
        stripped = line.strip()
        if self._block is not None:
            if stripped == END_RESULTS_MARK:
                self._close()
                return None
            if not stripped.startswith(RESULTS_MARK):
                self._block.append(line)
                # The object is whole: what follows is ordinary output (reports included).
                # Tried at a brace that ends a line and starts none indented (how a
                # printed object ends), or ends the block's first line, not at every
                # line: a long block would cost its length squared.
                closing = stripped.endswith("}") and (not line[:1].isspace() or not "".join(self._block[:-1]).strip())
                if closing and _leading_json("\n".join(self._block)) is not None:
                    self._close()
                return None
            self._close()  # results given again: a new block, and the last one counts
        if stripped.startswith(RESULTS_MARK):
            rest = stripped[len(RESULTS_MARK):]
            self._block = [rest]
            if _leading_json(rest) is not None:
                self._close()  # the object on the same line: what follows is ordinary output
            return None
        if stripped.startswith(REPORT_MARK):
            report = _json_object(stripped[len(REPORT_MARK):], "a report")
            if "step" not in report:
                raise ValueError('a report is a JSON object with a "step", e.g. {"step": 3, "loss": 0.2}')
            return report
        return None

    def _close(self) -> None:
        if self._block is not None:
            self._blocks.append("\n".join(self._block))
            self._block = None

    def results(self) -> dict | None:
        """The last results block, or None if there was none; ValueError if it is not a JSON object."""
        self._close()
        if not self._blocks:
            return None
        block = self._blocks[-1]
        whole = _leading_json(block)
        return _results_object(block if whole is None else whole, "the results block")


def _leading_json(text: str) -> str | None:
    """``text`` up to the end of the JSON value it starts with (what follows is ordinary
    output), or None if it does not start with a whole one."""
    stripped = text.lstrip()
    try:
        _, end = json.JSONDecoder().raw_decode(stripped)
    except (ValueError, RecursionError):
        return None
    return stripped[:end]


def _json_object(text: str, what: str) -> dict:
    from . import jsonio

    try:
        value = jsonio.loads(text, what)
    except SchedyError as e:
        raise ValueError(str(e)) from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


def _results_object(text: str, what: str) -> dict:
    """Results as a command prints them (Python's json writes NaN and Infinity): values no
    store can hold are read, to be refused one by one when the job is stored, keeping the others."""
    try:
        value = json.loads(text, parse_int=_whole_number)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply to read") from None
    except ValueError as e:
        raise ValueError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


def _whole_number(digits: str) -> int:
    # Past 400 digits no JSON number holds it, whatever it is: a stand-in as large is refused
    # alike (int() itself refuses past 4,300 digits).
    if len(digits) <= 400:
        return int(digits)
    return -(10**400) if digits.startswith("-") else 10**400


@dataclass
class RunOptions:
    """What ``schedy run`` does besides running the command."""

    max_jobs: int | None = None
    parallel: int = 1
    wait: bool = False
    ignore_errors: bool = False
    allow_empty_results: bool = False
    timeout: float | None = None


@dataclass
class Outcome:
    """How one command run ended."""

    status: str
    results: dict
    error: str | None = None
    failed: bool = False


class _Progress:
    """How long the readers of a command's output have spent since a start, not counting
    what they wait on outside: a report stored to a slow store, a line shown on a slow
    terminal. Reading lines counts: processes left behind that keep writing must not keep
    a job RUNNING for ever."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since = time.monotonic()
        self._waited = 0.0
        self._handling = 0

    def waited_since(self) -> None:
        """Start counting from zero, now."""
        with self._lock:
            self._since, self._waited = time.monotonic(), 0.0

    def waiting(self) -> float:
        """Seconds since the start, not counting the time spent in ``handling``."""
        with self._lock:
            return self._waited + (0.0 if self._handling else time.monotonic() - self._since)

    @contextlib.contextmanager
    def handling(self):
        """Around what a reader waits on outside (a store, the terminal)."""
        with self._lock:
            if not self._handling:
                self._waited += time.monotonic() - self._since
            self._handling += 1
        try:
            yield
        finally:
            with self._lock:
                self._handling -= 1
                if not self._handling:
                    self._since = time.monotonic()


class Runner:
    """Claims jobs of ``experiment`` and runs ``command`` for each, in ``options.parallel`` slots.

    Example:
        >>> runner = Runner(experiment, ["python3", "train.py", "%h"], RunOptions(max_jobs=10))  # doctest: +SKIP
        >>> exit_code = runner.run()  # doctest: +SKIP
    """

    def __init__(self, experiment: "Experiment", command: list[str], options: RunOptions,
                 out: IO[str] | None = None, err: IO[str] | None = None):
        self.experiment = experiment
        self.command = list(command)
        self.options = options
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.done = 0
        self.crashed = 0
        self.pruned = 0
        self.failed = 0
        self.claimed = 0
        self._stop = threading.Event()
        self._signal: int | None = None
        self._lock = threading.Lock()
        self._print_lock = threading.Lock()
        self._unwritable: set[int] = set()  # ids of out/err once their reader went away
        self._children: dict[int, subprocess.Popen] = {}
        self._interrupted: set[int] = set()  # pids of commands a stop signal reached while they ran
        self._stopping: set[int] = set()  # pids of commands being stopped for their job (pruned, lost)
        self._pruned_at: dict[str, float] = {}  # job id -> the step after which the scheduler stopped it
        self._error: BaseException | None = None
        self._started = time.monotonic()

    # -- the loop
    def run(self) -> int:
        """Run until the queue is empty (or forever with ``wait``); return the exit code."""
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:  # ignored on purpose (nohup): left so
                    previous[signum] = signal.signal(signum, self._on_signal)
        try:
            slots = [threading.Thread(target=self._slot, name=f"schedy-run-{k}", daemon=True)
                     for k in range(max(1, self.options.parallel))]
            for slot in slots:
                slot.start()
            for slot in slots:
                while slot.is_alive():
                    slot.join(0.2)  # short joins: the main thread must stay free for signals
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if self._error is not None:
            raise self._error
        self._progress("finished")
        if self._signal is not None:
            return 128 + self._signal
        return 1 if self.failed and not self.options.ignore_errors else 0

    def _slot(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            with self._lock:
                if self.options.max_jobs is not None and self.claimed >= self.options.max_jobs:
                    return
                self.claimed += 1
            try:
                job = self.experiment.next_job()
            except NoJobError:
                with self._lock:
                    self.claimed -= 1
                if not self.options.wait:
                    return
                self._stop.wait(delay)
                delay = min(delay * 2, _MAX_WAIT_SECONDS)
                continue
            except BaseException as e:  # handed to the main thread, which reports it once
                with self._lock:
                    self.claimed -= 1
                    self._error = self._error or e
                self._stop.set()
                return
            delay = 0.5
            if self._stop.is_set():  # stopped while claiming: hand the job back untouched
                _requeue_quietly(job)
                return
            try:
                self._finish(job, self._run_job(job))
            except BaseException as e:
                with self._lock:
                    self._error = self._error or e
                self._stop.set()
                _crash_quietly(job, f"schedy run failed: {e}")
                return

    def _on_signal(self, signum, frame) -> None:
        self._signal = signum
        self._stop.set()
        with self._lock:
            children = list(self._children.values())
            # A command that had ended on its own is judged by how it ended, not stopped.
            self._interrupted.update(child.pid for child in children if child.poll() is None)
        for child in children:
            _signal_group(child, signal.SIGTERM)  # processes a command left behind too

    # -- one job
    def _run_job(self, job: "Job") -> Outcome:
        name = self.experiment.name
        try:
            argv = expand_args(self.command, name, job.job_id, job.hyperparameters)
        except ValueError as e:
            return Outcome("CRASHED", {}, f"could not start the command: {e}", failed=True)
        with tempfile.TemporaryDirectory(prefix="schedy-run-") as scratch:
            results_file = os.path.join(scratch, "results.json")
            env = {
                **os.environ,
                "SCHEDY_EXPERIMENT": name,
                "SCHEDY_JOB_ID": job.job_id,
                "SCHEDY_HYPERPARAMETERS": json.dumps(job.hyperparameters),
                "SCHEDY_RESULTS_FILE": results_file,
                "SCHEDY_DB": _absolute(self.experiment._require_db().url),
            }
            self._say(f"job {job.job_id}: {shlex.join(argv)}")
            try:
                child = subprocess.Popen(
                    argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                    env=env, start_new_session=True,
                )
            except (OSError, ValueError) as e:  # (ValueError: a NUL in an argument)
                return Outcome("CRASHED", {}, f"could not start the command: {e}", failed=True)
            with self._lock:
                self._children[child.pid] = child
                if self._stop.is_set():  # a signal (or another job's failure) came while it started
                    if self._signal is not None:
                        self._interrupted.add(child.pid)
                    _signal_group(child, signal.SIGTERM)
            parser = OutputParser()
            tail: collections.deque[str] = collections.deque()
            progress = _Progress()
            readers = [
                threading.Thread(target=self._read_stdout, args=(_lines(child.stdout), parser, job, child, progress), daemon=True),
                threading.Thread(target=self._read_stderr, args=(_lines(child.stderr), tail, progress), daemon=True),
            ]
            for reader in readers:
                reader.start()
            timed_out = self._wait(child)
            self._drain(job, child, readers, progress)
            with self._lock:
                self._children.pop(child.pid, None)
                interrupted = child.pid in self._interrupted
                self._interrupted.discard(child.pid)
                self._stopping.discard(child.pid)
            return self._outcome(job, child.returncode, parser, tail, results_file, timed_out, interrupted)

    def _wait(self, child: subprocess.Popen) -> bool:
        deadline = None if self.options.timeout is None else time.monotonic() + self.options.timeout
        while True:
            try:
                child.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
            with self._lock:
                interrupted = child.pid in self._interrupted
            if interrupted:  # (the signal handler sent SIGTERM): the rest of its group goes too
                _stop_group(child, terminate=False)
                return False
            if child.returncode is not None:
                return False
            if deadline is not None and time.monotonic() >= deadline:
                _stop_group(child)
                return True

    def _drain(self, job: "Job", child: subprocess.Popen, readers: list[threading.Thread], progress: "_Progress") -> None:
        """Let the readers reach the end of the exited command's output. Processes it left
        behind that hold its output open would keep the job RUNNING for as long as they
        live: OUTPUT_GRACE_SECONDS after the command exited, not counting the time the
        readers spend showing lines and storing reports (lines those processes write do not
        start the count again), they are stopped (its process group: SIGTERM, then
        SIGKILL), and a reader still blocked after that (on a process that left the group)
        is left behind. A reader that is only behind (storing reports to a slow store) is
        waited for, however long it takes."""
        progress.waited_since()  # the command's last quiet stretch does not count
        steps = [(signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, OUTPUT_GRACE_SECONDS)]
        grace = OUTPUT_GRACE_SECONDS
        while any(reader.is_alive() for reader in readers):
            for reader in readers:
                reader.join(0.1)
            if progress.waiting() < grace or not any(reader.is_alive() for reader in readers):
                continue
            if not steps:
                return
            if len(steps) == 2:
                self._say(f"job {job.job_id}: processes the command left behind hold its output open; stopping them")
            signum, grace = steps.pop(0)
            _signal_group(child, signum)
            progress.waited_since()

    def _read_stdout(self, stream, parser: OutputParser, job: "Job", child: subprocess.Popen, progress: "_Progress") -> None:
        for line in stream:
            self._take_line(line, parser, job, child, progress)

    def _take_line(self, line: str, parser: OutputParser, job: "Job", child: subprocess.Popen, progress: "_Progress") -> None:
        """Echo one line of the command's output; store it if it is a report."""
        with progress.handling():
            self._echo(self.out, line)
        try:
            report = parser.feed(line.rstrip("\r\n"))
        except ValueError as e:
            self._say(f"job {job.job_id}: ignored report line: {e}")
            return
        if report is None:
            return
        with progress.handling():
            self._store_report(report, job, child)

    def _store_report(self, report: dict, job: "Job", child: subprocess.Popen) -> None:
        try:
            step = report.pop("step")
            job.report(step, **report)
        except LeaseLostError as e:
            self._say(f"job {job.job_id}: {e}; stopping its command")
            self._stop_soon(child)
            return
        except (SchedyError, TypeError) as e:  # (TypeError: a metric named like report()'s own "self")
            self._say(f"job {job.job_id}: ignored report line: {e}")
            return
        if self._should_stop(job):
            with self._lock:
                self._pruned_at.setdefault(job.job_id, step)
            self._say(f"job {job.job_id}: the scheduler stops it early after step {step:g}; stopping its command")
            self._stop_soon(child)

    def _stop_soon(self, child: subprocess.Popen) -> None:
        """Stop ``child`` from another thread: the caller reads its output, which it may
        fill while it stops."""
        with self._lock:
            if child.pid in self._stopping:
                return
            self._stopping.add(child.pid)
        threading.Thread(target=_stop_group, args=(child,), name="schedy-run-stop", daemon=True).start()

    def _should_stop(self, job: "Job") -> bool:
        """The scheduler's early-stopping decision after a report (a scheduler's own code:
        its failure is reported, and the job goes on)."""
        try:
            return job.should_stop() and not job._lost
        except Exception as e:
            self._say(f"job {job.job_id}: not stopped early, the decision failed: {e}")
            return False

    def _read_stderr(self, stream, tail: collections.deque, progress: "_Progress") -> None:
        size = 0
        for line in stream:
            with progress.handling():
                self._echo(self.err, line)
            tail.append(line)
            size += len(line)
            while size > STDERR_TAIL_CHARS and len(tail) > 1:
                size -= len(tail.popleft())

    def _outcome(self, job, code: int, parser: OutputParser, tail, results_file: str, timed_out: bool,
                 interrupted: bool) -> Outcome:
        results: dict = {}
        problem = None
        try:
            if os.path.exists(results_file) and os.path.getsize(results_file):
                with open(results_file, encoding="utf-8") as f:
                    results.update(_results_object(f.read(), "the results file"))
            results.update(parser.results() or {})
        except ValueError as e:
            problem = f"unreadable results: {e}"
        except OSError as e:  # (a directory where the file should be, say)
            problem = f"unreadable results: {e.strerror or e}: {results_file}"
        stderr_tail = "".join(tail)[-STDERR_TAIL_CHARS:].strip()
        with self._lock:
            pruned_at = self._pruned_at.pop(job.job_id, None)
        if pruned_at is not None:
            return Outcome("PRUNED", results, f"stopped early by the scheduler after step {pruned_at:g}")
        if interrupted:
            name = signal.Signals(self._signal).name
            return Outcome("CRASHED", results, f"schedy run was stopped by {name}" + _tail_note(stderr_tail))
        if timed_out:
            return Outcome("CRASHED", results, f"timed out after {self.options.timeout:g}s" + _tail_note(stderr_tail), True)
        if code != 0:
            how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
            return Outcome("CRASHED", results, f"command {how}" + _tail_note(stderr_tail), True)
        if problem:
            return Outcome("CRASHED", results, problem, True)
        if not results and not self.options.allow_empty_results:
            return Outcome("CRASHED", results, "the command gave no results: print a '--- RESULTS ---' line followed "
                           "by a JSON object, write one to $SCHEDY_RESULTS_FILE, or use --allow-empty-results", True)
        return Outcome("DONE", results)

    def _finish(self, job: "Job", outcome: Outcome) -> None:
        job.status = outcome.status
        job.results.update(outcome.results)
        job.error = outcome.error
        try:
            try:
                job.put()
            except ValidationError as e:  # results no store can hold (an integer beyond the float range...)
                job._crash_with_storable_results(e)
                outcome = Outcome("CRASHED", job.results, job.error, failed=True)
        except LeaseLostError as e:
            self._say(f"job {job.job_id}: {e}")
            outcome = Outcome("CRASHED", {}, str(e))
        except SchedyError as e:
            self._say(f"job {job.job_id}: could not store its end: {e}")
            outcome = Outcome("CRASHED", {}, str(e), failed=True)
        with self._lock:
            if outcome.status == "DONE":
                self.done += 1
            elif outcome.status == "PRUNED":
                self.pruned += 1
            else:
                self.crashed += 1
            if outcome.failed:
                self.failed += 1
                if not self.options.ignore_errors:
                    self._stop.set()
        detail = f": {outcome.error.splitlines()[0]}" if outcome.error else ""
        self._progress(f"job {job.job_id} {outcome.status}{detail}")

    # -- output
    def _echo(self, stream: IO[str], line: str) -> None:
        """Show a line; once ``stream``'s reader is gone (``| head``), show nothing more on
        it. The jobs go on: their output is still read, so that a command never blocks on
        a full pipe, and their results are still stored."""
        with self._print_lock:
            if id(stream) in self._unwritable:
                return
            try:
                try:
                    stream.write(line)
                except UnicodeEncodeError:  # a character its encoding lacks: escaped, not the end of the output
                    encoding = getattr(stream, "encoding", None) or "ascii"
                    stream.write(line.encode(encoding, "backslashreplace").decode(encoding))
                stream.flush()
            except (OSError, ValueError):  # a closed pipe; a closed file
                self._unwritable.add(id(stream))
                _silence(stream)

    def _say(self, message: str) -> None:
        # Escaped: a message quotes values anyone who can queue a job chose (a command line,
        # an error), and a terminal control sequence in them must not reach the terminal.
        self._echo(self.err, f"[schedy run] {printable(message)}\n")

    def _progress(self, message: str) -> None:
        elapsed = time.monotonic() - self._started
        minutes, seconds = divmod(int(elapsed), 60)
        pruned = f", {self.pruned} pruned" if self.pruned else ""
        self._say(f"{message} | {self.done} done, {self.crashed} crashed{pruned}, {minutes:02d}:{seconds:02d} elapsed")


def _crash_quietly(job: "Job", error: str) -> None:
    if job.status == "RUNNING":
        job.status, job.error = "CRASHED", error
        try:
            job.put()
        except SchedyError:
            pass  # its lease will expire and the next worker will recover it


def _requeue_quietly(job: "Job") -> None:
    job.status = "QUEUED"  # the lease stays in the document so that storing it drops its marker
    try:
        job.put()
    except SchedyError:
        pass  # its lease will expire and the next worker will recover it


def _tail_note(stderr_tail: str) -> str:
    return f"; stderr: {stderr_tail}" if stderr_tail else ""


def _silence(stream: IO[str]) -> None:
    """Point ``stream``'s file descriptor at the null device, so that what is left in its
    buffer and Python's flush at exit fail no more (no "Exception ignored" at exit)."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


def _signal_group(child: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(child.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _stop_group(child: subprocess.Popen, terminate: bool = True) -> None:
    """Stop a command and every process of its group: SIGTERM (unless sent already), then
    SIGKILL to what is left of the group after KILL_GRACE_SECONDS, even once the command
    itself has exited (a process it started may ignore SIGTERM)."""
    if terminate:
        _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_SECONDS
    try:
        child.wait(timeout=KILL_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    while child.returncode is not None and _group_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    if child.returncode is None or _group_alive(child):
        _signal_group(child, signal.SIGKILL)
    child.wait()


def _group_alive(child: subprocess.Popen) -> bool:
    """Whether a process of the group ``child`` led is left (the group's id is the leader's
    pid, which is not given to another process while the group lives)."""
    try:
        os.killpg(child.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lines(stream: IO[bytes]) -> IO[str]:
    """A command's output as text lines, ending as written: a progress bar's '\r' stays
    one, and the terminal redraws the bar rather than printing it again on a new line."""
    return io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")


def _absolute(url: str) -> str:
    """A store URL that means the same from any directory (a command may change its own)."""
    return url if "://" in url else os.path.abspath(url)
