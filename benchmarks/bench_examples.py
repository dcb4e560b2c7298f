"""The figures the README and the examples state, measured: wall time and cells of each example
study, the number of unlearning methods (from the registry), each example's estimated shots,
provider tasks and cost (the numbers `qmu-hw estimate` prints), and optionally the default
test suite's duration. Writes the section "Examples (bench_examples.py)" of RESULTS.md with
the machine, the load on it, the date and the commit: the README quotes that section, so no
figure there is typed by hand.

    python benchmarks/bench_examples.py                      # quickstart only (timed)
    python benchmarks/bench_examples.py --all                # every local example (hours)
    python benchmarks/bench_examples.py noise_ladder --tests # named examples + the test suite
    python benchmarks/bench_examples.py --repeats 3          # median of 3 runs per example

Each timed example runs `qmu-hw run EXAMPLE --quiet --output <fresh tmp folder>` in a
subprocess, as a user would. Estimates cover every example (they run nothing; cloud examples
need no account). Load matters on a shared machine: the 1-minute load average before and
after each run is recorded next to its time.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import markdown_table, update_results  # noqa: E402

SECTION = "Examples (bench_examples.py)"
# Examples that run on local engines (timed with --all); the cloud ones are only estimated.
LOCAL = ("quickstart", "paper_protocol", "noise_ladder", "shot_budget", "digits_cnn", "digits_noise",
         "digits_paired_noise")
CLOUD = ("ibm_hardware", "braket_hardware")
# What the README promises for an example on 2 cores (issue 21: quickstart <= 60 s).
TARGETS = {"quickstart": 60.0}


def _env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return env


def _load() -> float:
    return os.getloadavg()[0]


def machine() -> dict:
    import torch

    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    cpu = "unknown"
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": commit + (" (with uncommitted changes)" if dirty else ""),
            "cpu": f"{cpu}, {os.cpu_count()} logical CPUs", "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__}


def time_example(name: str, repeats: int) -> dict:
    walls, loads = [], []
    cells = 0
    phases: dict[str, float] = {}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
            out = Path(tmp) / name
            before = _load()
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "qmu_hw.cli", "run", f"examples/{name}.toml", "--quiet",
                                   "--output", str(out)], cwd=ROOT, env=_env(), capture_output=True, text=True)
            wall = time.perf_counter() - t0
            loads.append((before, _load()))
            if proc.returncode != 0:
                raise SystemExit(f"{name}: qmu-hw run exited {proc.returncode}:\n{proc.stderr[-3000:]}")
            walls.append(wall)
            with open(out / "results.csv", newline="") as fh:
                rows = list(csv.DictReader(fh))
            cells = len(rows)
            phases = {p: sum(float(r.get(f"cost_{p}_wall_s") or 0) for r in rows) for p in ("unlearn", "eval")}
        print(f"{name}: {wall:.1f} s, {cells} cells (load {loads[-1][0]:.1f} -> {loads[-1][1]:.1f})", flush=True)
    return {"name": name, "wall": statistics.median(walls), "walls": walls, "cells": cells, "phases": phases,
            "loads": loads}


def estimates(names) -> dict[str, dict]:
    """Each example's bound as `qmu-hw run` checks it: the dry run of the request schedule for
    studies on a billed profile (the money figures the README quotes), the analytic model
    (`qmu-hw estimate --fast`, an upper bound at least the dry run's, held so by the tests) for
    simulator studies, whose dry run trains every model (minutes for the noise ladder)."""
    from qmu_hw.core.backend import adapter_info
    from qmu_hw.study.config import load_config
    from qmu_hw.study.dry_run import dry_run_estimate
    from qmu_hw.study.estimate import estimate_study
    from qmu_hw.study.grid import expand, profile_of

    out = {}
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = load_config(ROOT / "examples" / f"{name}.toml", output=tmp, check_backends_now=False)
            billed = any(adapter_info(profile_of(c.backend)).billed for c in expand(cfg))
            t0 = time.perf_counter()
            if billed:
                est = dry_run_estimate(cfg, measure_time=False, progress=False)
            else:
                est = estimate_study(cfg, measure_time=False, progress=False)
        out[name] = {**est.totals, "estimate_s": time.perf_counter() - t0,
                     "method": "dry run" if billed else "analytic (--fast)"}
        print(f"estimate {name}: {est.totals['cells']} cells, {est.totals['shots']:,} shots, "
              f"cost {est.totals['cost']:.2f} ({out[name]['method']}, {out[name]['estimate_s']:.1f} s)", flush=True)
    return out


def test_suite() -> dict:
    """The README's test command's pytest part (the default selection), timed."""
    before = _load()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=ROOT,
                          env=_env(), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    # pytest -q ends with "888 passed, 31 skipped, ... in 600.57s (0:10:00)" (no "=" banner)
    summary = next((ln for ln in reversed(proc.stdout.splitlines())
                    if " in " in ln and re.search(r"\d+ (?:passed|failed)", ln)), "")
    n = sum(int(x) for x in re.findall(r"(\d+) (?:passed|failed|skipped|xfailed|xpassed|error)", summary))
    return {"wall": wall, "tests": n, "summary": summary.strip("= "), "loads": (before, _load()),
            "rc": proc.returncode}


def render(mach: dict, timed: list[dict], est: dict[str, dict], n_methods: int, suite: dict | None,
           note: str, command: str) -> str:
    lines = [f"Measured {mach['date']} at commit `{mach['commit']}` on {mach['cpu']} ({mach['platform']}, "
             f"Python {mach['python']}, torch {mach['torch']}), `OMP_NUM_THREADS=1`.",
             "", f"Command: `{command}`", ""]
    if note:
        lines += [f"Conditions: {note}", ""]
    lines += [f"Unlearning methods in the registry (`qmu_hw.unlearning.method_names()`): **{n_methods}**.", ""]
    if timed:
        rows = []
        for t in timed:
            target = TARGETS.get(t["name"])
            verdict = "–" if target is None else (f"≤ {target:.0f} s: {'met' if t['wall'] <= target else 'missed'}")
            load = ", ".join(f"{a:.1f}→{b:.1f}" for a, b in t["loads"])
            rows.append([t["name"], str(t["cells"]), f"{t['wall']:.1f}",
                         " / ".join(f"{w:.1f}" for w in t["walls"]) if len(t["walls"]) > 1 else "–",
                         f"{t['phases'].get('unlearn', 0):.1f}", f"{t['phases'].get('eval', 0):.1f}", load, verdict])
        lines += ["Wall time of `qmu-hw run EXAMPLE --quiet` in a fresh output folder (median of the runs; the "
                  "load average is the machine's 1-minute load before→after each run: above 2 on 2 cores "
                  "means other work shared the CPUs and the time is inflated).", "",
                  markdown_table(["example", "cells", "wall (s)", "runs (s)", "unlearning (s)", "evaluation (s)",
                                  "load", "target"], rows), ""]
    if est:
        rows = [[n, f"{e['cells']:,}", f"{e['circuits']:,}", f"{e['shots']:,}", f"{e['tasks']:,}",
                 f"{e['qpu_seconds']:,.0f}", f"{e['cost']:,.2f}", e["method"], f"{e.get('estimate_s', 0.0):.1f}"]
                for n, e in est.items()]
        lines += ["Estimates (upper bounds, every loop at its full epochs, as `qmu-hw run` checks them: "
                  "`qmu-hw estimate EXAMPLE --no-timing`, the dry run of the study's request schedule, for "
                  "studies on a billed profile; `--fast`, the analytic model, for simulator studies; cost in "
                  "the profiles' currency, USD for the shipped IBM and Braket profiles; the last column is the "
                  "estimate's own wall time).", "",
                  markdown_table(["example", "cells", "circuits", "shots", "provider tasks/jobs",
                                  "billed device s", "cost", "bound from", "estimate (s)"], rows), ""]
    if suite:
        lines += [f"Default test suite (`python -m pytest`, not slow, not hardware): {suite['tests']} tests in "
                  f"{suite['wall'] / 60:.1f} min ({suite['summary']}; exit {suite['rc']}; load "
                  f"{suite['loads'][0]:.1f}→{suite['loads'][1]:.1f}).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("examples", nargs="*", help=f"examples to time (default quickstart); one of {LOCAL}")
    ap.add_argument("--all", action="store_true", help="time every local example (hours on 2 cores)")
    ap.add_argument("--tests", action="store_true", help="also time the default test suite")
    ap.add_argument("--repeats", type=int, default=1, help="runs per example (the median is reported)")
    ap.add_argument("--note", default="", help="conditions to record (e.g. other jobs on the machine)")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    args = ap.parse_args(argv)
    names = list(LOCAL) if args.all else (args.examples or ["quickstart"])
    bad = [n for n in names if n not in LOCAL]
    if bad:
        ap.error(f"unknown example {bad[0]!r}; expected one of {', '.join(LOCAL)}")
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    os.chdir(ROOT)
    from qmu_hw.unlearning import method_names

    mach = machine()
    timed = [time_example(n, args.repeats) for n in names]
    est = estimates([*LOCAL, *CLOUD])
    suite = test_suite() if args.tests else None
    command = "python benchmarks/bench_examples.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    body = render(mach, timed, est, len(method_names()), suite, args.note, command)
    print(body)
    update_results(SECTION, body, path=args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
