"""Run many ``idn`` command lines cheaply, each as a real process under a
time and a memory limit: the fuzz suite's driver (tests/test_fuzz_*.py).

    python -m idn.fuzzcheck CASES.jsonl RESULTS.jsonl [--jobs N] [--timeout S] [--memory-mb MB]

Each line of CASES is ``{"id": ..., "argv": [...], "cwd": optional}``. The
driver imports idn (numpy, pandas, numba kernels) once and warms it up on a
tiny run, then, per case, forks a child (``os.fork``: a real process that
starts in a millisecond instead of a second) which sets its limits
(``resource.setrlimit``: address space and CPU seconds), sends its stdout and
stderr to files and runs ``idn.cli.main(argv)``; an exception that escapes
prints its traceback and exits 1, as the console script would. The parent
kills a child past the wall-clock timeout. Each line of RESULTS is
``{"id", "status", "signal", "timed_out", "seconds", "stdout", "stderr"}``.

``classify`` says what the fuzz suite demands of an outcome: success, or
exit status 2 with one line (the first line; a scenario's several problems
follow as indented lines) naming the culprit; never a traceback, a signal,
a timeout, or another status.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_TIMEOUT = 20.0  # seconds of wall clock per case
DEFAULT_MEMORY_MB = 4096  # address space per case (numba and numpy map ~1 GB at import)
IDN_LIMIT_GB = "1"  # idn's own up-front memory limit inside the cases, well under the rlimit


def _warm_up() -> None:
    """Import and JIT-load what the cases use, once, before forking."""
    import contextlib
    import io

    from . import cli
    from .experiments import report, sweep  # noqa: F401
    from .model.scenario import scenario_from_dict
    from .sim.inputs import count_matrix, default_trace, request_types_for
    from .sim.loop import run_policy
    from .policies.registry import make_policy

    idn = scenario_from_dict({
        "nodes": [{"id": "c", "tier": "cloud", "repository": True, "hardware": "gpu"},
                  {"id": "a", "tier": "access", "budget_mb": 100, "hardware": "gpu"}],
        "links": [{"a": "a", "b": "c", "latency_ms": 5}],
        "tasks": [{"id": "t", "models": ["MobileNetV2", "ResNet50"]}],
    })  # fmt: skip
    trace = default_trace(idn, 3, 0)
    rt = request_types_for(idn, trace)
    counts = count_matrix(rt, trace)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for name in ("infida", "online-greedy", "static-greedy", "cloud-only"):
            run_policy(rt, make_policy(name), counts)
        cli.build_parser()


def _child(argv: list[str], out_path: str, err_path: str, memory_mb: int, cpu_seconds: int, cwd: str | None) -> None:
    """In the forked child: limits, redirections, then the real CLI."""
    try:
        os.setsid()  # its own process group, so a timeout kills whatever it started
        limit = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(out, 1), os.dup2(err, 2)
        sys.stdout = os.fdopen(1, "w", closefd=False)
        sys.stderr = os.fdopen(2, "w", closefd=False)
        if cwd:
            os.chdir(cwd)
        os.environ["IDN_MEMORY_LIMIT_GB"] = os.environ.get("IDN_FUZZ_LIMIT_GB", IDN_LIMIT_GB)
        from .cli import main

        code = main(argv)
    except SystemExit as exc:  # argparse exits this way
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001  (what the console script would print)
        import traceback

        traceback.print_exc()
        code = 1
    try:
        sys.stdout.flush(), sys.stderr.flush()
    finally:
        os._exit(int(code) & 0xFF)


def run_cases(cases: list[dict], jobs: int = 2, timeout: float = DEFAULT_TIMEOUT, memory_mb: int = DEFAULT_MEMORY_MB) -> list[dict]:
    """Run every case (see the module docstring), jobs at a time; results in case order."""
    _warm_up()
    tmp = Path(tempfile.mkdtemp(prefix="idn-fuzz-"))
    results: dict[int, dict] = {}
    running: dict[int, tuple[int, float, Path, Path]] = {}  # pid -> (case index, start, out, err)
    todo = list(range(len(cases)))[::-1]
    while todo or running:
        while todo and len(running) < jobs:
            i = todo.pop()
            out, err = tmp / f"{i}.out", tmp / f"{i}.err"
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                _child([str(a) for a in cases[i]["argv"]], str(out), str(err), memory_mb, int(timeout) + 5, cases[i].get("cwd"))
            running[pid] = (i, time.monotonic(), out, err)
        time.sleep(0.002)
        for pid in list(running):
            i, start, out, err = running[pid]
            done, status = os.waitpid(pid, os.WNOHANG)
            timed_out = False
            if not done and time.monotonic() - start > timeout:
                os.killpg(pid, signal.SIGKILL)
                done, status = os.waitpid(pid, 0)
                timed_out = True
            if not done:
                continue
            del running[pid]
            results[i] = {
                "id": cases[i].get("id", i),
                "status": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                "timed_out": timed_out,
                "seconds": round(time.monotonic() - start, 3),
                "stdout": out.read_text(errors="replace")[-4000:],
                "stderr": err.read_text(errors="replace")[-4000:],
            }
            out.unlink(missing_ok=True), err.unlink(missing_ok=True)
    tmp.rmdir()
    return [results[i] for i in range(len(cases))]


def classify(result: dict, names: list[str] = (), must_fail: bool = False) -> str | None:
    """None if the outcome is acceptable, else what is wrong with it.
    names: strings of which the error line must contain at least one (the
    file, the flag, the parameter)."""
    if result["timed_out"]:
        return "timed out"
    if result["signal"] is not None:
        return f"killed by signal {result['signal']}"
    err = result["stderr"]
    if "Traceback" in err:
        return "traceback"
    if result["status"] == 0:
        return "accepted a value it must refuse" if must_fail else None
    if result["status"] != 2:
        return f"exit status {result['status']}"
    lines = err.splitlines()
    errors = [ln for ln in lines if "error:" in ln]
    if not lines or not errors or not lines[-1]:
        return "exit 2 without an error line"
    first = errors[0]
    rest = lines[lines.index(first) + 1 :]
    if any(not ln.startswith("  ") for ln in rest) or any(not ln.startswith(("idn", "  ")) for ln in lines):
        return "more than one error line"
    if names and not any(str(n) in first for n in names):
        return f"the error line names none of {list(map(str, names))}"
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m idn.fuzzcheck", description=__doc__.splitlines()[0])
    p.add_argument("cases")
    p.add_argument("results")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    p.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB)
    args = p.parse_args(argv)
    cases = [json.loads(line) for line in Path(args.cases).read_text().splitlines() if line.strip()]
    results = run_cases(cases, args.jobs, args.timeout, args.memory_mb)
    Path(args.results).write_text("".join(json.dumps(r) + "\n" for r in results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
