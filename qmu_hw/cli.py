"""``qmu-hw``: run, estimate and report studies; list backends.

Exit codes: 0 ok, 1 some cells failed (the others are stored), 2 bad config or input (nothing
was run), 3 budget refused, 4 backend unavailable, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK, EXIT_CELLS_FAILED, EXIT_INPUT, EXIT_BUDGET, EXIT_UNAVAILABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_CODES = """exit codes:
  0    ok
  1    some cells failed (their errors are printed and stored; the other cells are saved)
  2    bad config, arguments or input files; nothing was run
  3    budget refused (before anything was submitted)
  4    backend unavailable (its SDK is not installed, no account, unreachable,
       job failed on the provider)
  130  interrupted (finished cells are saved; rerun to resume)"""
# The output folder of the command in flight, named in disk errors that carry no path.
_OUTPUT: list[str] = []


def _err(msg: str) -> None:
    print(f"qmu-hw: error: {msg}", file=sys.stderr)


def _table(header: list[str], rows: list[list]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*["-" * w for w in widths])] +
                     [fmt.format(*[str(x) for x in r]) for r in rows])


def _load(args):
    from .study.config import load_config

    return load_config(args.config, output=getattr(args, "output", None))


def cmd_run(args) -> int:
    from .study.finish import finish_study
    from .study.runner import StudyRunner

    cfg = _load(args)
    _OUTPUT.append(str(cfg.output))
    _confirm_hardware(cfg, args)
    if cfg.tables.execution.threads is not None:
        from .adapters.threads import apply_thread_policy

        apply_thread_policy(cfg.tables.execution.threads)
    runner = StudyRunner(cfg, progress=not args.quiet and sys.stderr.isatty() or args.progress,
                         log=(lambda *_: None) if args.quiet else (lambda m: print(m, file=sys.stderr)))
    summary = runner.run(max_cells=args.max_cells, dry_run=args.dry_run, workers=args.workers,
                         executor=args.executor, address=args.address)
    if args.dry_run:
        print(f"dry run: {summary.total_cells} cells, {summary.skipped} already done; nothing was run")
        return EXIT_OK
    done = finish_study(cfg.output, cfg, store=runner.store, note=f"Config: `{cfg.path}` (hash {cfg.digest()[:12]}).\n")
    _print_summary(done.rows)
    report = done.report
    phases = summary.phases
    print(f"\n{summary.ran} cells run, {summary.skipped} skipped (already done), {summary.failed} failed "
          f"in {summary.wall_time_s:.1f}s; results in {cfg.output}/results.sqlite, report {report}")
    split = {k: sum(v["wall_time_s"] for p, v in phases.items() if p.split("/")[0] == k)
             for k in ("train", "oracle", "unlearn", "eval")}
    print("backend time by phase: " + ", ".join(f"{k} {v:.1f}s" for k, v in split.items()))
    for label, err in summary.failures:
        _err(f"cell failed: {label}: {err}")
    if any(str(err).startswith("budget:") for _, err in summary.failures):
        return EXIT_BUDGET  # a cap refused some cells (stored failed: budget); the others are saved
    return EXIT_OK if summary.failed == 0 else EXIT_CELLS_FAILED


def _confirm_hardware(cfg, args) -> None:
    """Billed backends (profiles with requires_confirmation: real devices, cloud simulators) need
    --yes or an interactive yes."""
    from .core.exceptions import BudgetExceededError
    from .study.grid import profile_of

    real = [b for b in cfg.backends if profile_of(b).requires_confirmation]
    if not real or args.dry_run:
        return
    from .study.dry_run import dry_run_estimate

    # the bound `run` checks billed studies against (runner.StudyRunner._bound): the dry run
    est = dry_run_estimate(cfg, measure_time=False, progress=False)
    reason = est.refusal(cfg)
    if reason:
        raise BudgetExceededError(reason)
    msg = (f"this study submits to billed backends {real}: up to {est.totals['shots']:,} shots, "
           f"{est.totals['tasks']:,} tasks/jobs, estimated cost {est.totals['cost']:.2f} {est.currency}")
    if args.yes:
        print(msg + " (confirmed by --yes)", file=sys.stderr)
        return
    if not sys.stdin.isatty():
        raise BudgetExceededError(msg + "; refusing without --yes (no terminal to ask)")
    if input(msg + ". Proceed? [y/N] ").strip().lower() not in ("y", "yes"):
        raise BudgetExceededError("not confirmed; nothing was submitted")


def _print_summary(rows) -> None:
    from .study.grid import axis_columns
    from .study.report import mean_ci

    axes = axis_columns(rows)  # one line per study-axis combination too
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["scenario"], r["backend"], r["shots"], r["method"], *(r[a] for a in axes)), []).append(r)
    out = []
    for (sc, be, shots, m, *combo), rs in sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        f = mean_ci([r["acc_forget"] for r in rs])
        t = mean_ci([r.get("acc_test_retained", r["acc_test"]) for r in rs])
        x = mean_ci([r.get("excess") for r in rs])
        within = [float(r["within_oracle_spread"]) for r in rs if r.get("within_oracle_spread") is not None
                  and r["within_oracle_spread"] == r["within_oracle_spread"]]
        out.append([sc, be, "exact" if shots is None else shots, m, *combo, len(rs), f"{f[0]:.3f}", f"{t[0]:.3f}",
                    f"{x[0]:+.4f}" if x[0] == x[0] else "n/a (n_oracles < 2)",
                    f"{sum(within) / len(within):.0%}" if within else "-",
                    f"{sum(r.get('cost_shots', 0) for r in rs) / len(rs):,.0f}"])
    if out:
        # test acc is on the retained classes in class scenarios; JS excess is the forget-set JS
        # to the same-noise oracle ensemble minus the oracle-vs-oracle floor.
        from .metrics.catalog import label

        print(_table(["scenario", "backend", "shots", "method", *axes, "seeds", label("acc_forget"),
                      label("acc_test_retained"),
                      label("excess"), label("within_oracle_spread"), "shots/cell"], out))


def cmd_estimate(args) -> int:
    from .study.estimate import estimate_study
    from .study.power import parse_power, study_power

    if args.pilot and not args.power:
        _err("--pilot needs --power delta=<effect size> (the pilot only supplies sigma)")
        return EXIT_INPUT
    if args.power:
        parse_power(args.power)  # a malformed spec stops here, before the config is read
    cfg = _load(args)
    power = study_power(cfg, args.power, args.pilot) if args.power else []  # before the (timed) estimate
    if args.fast:
        est = estimate_study(cfg, measure_time=not args.no_timing, progress=not args.json)
    else:
        from .study.dry_run import dry_run_estimate
        from .study.grid import expand

        n = len(expand(cfg))
        if n > 100 and not args.json:  # it trains every model's classical parts: minutes on a large grid
            print(f"estimating {n} cells by a dry run of their request schedule (`--fast`: the analytic bound "
                  "at once)", file=sys.stderr)
        est = dry_run_estimate(cfg, measure_time=not args.no_timing, progress=not args.json)
    for m in est.mismatches:  # the dry run charged a task more than its registered cost model says
        print(f"qmu-hw: warning: a cost model undercounts {m}; the bound shown is the dry run's "
              "(please report this)", file=sys.stderr)
    reason = est.refusal(cfg)
    if args.json:
        import json

        print(json.dumps({**est.as_json(), "refused": reason}, indent=2, sort_keys=True))
        if reason:
            _err(f"budget: {reason}")
        return EXIT_BUDGET if reason else EXIT_OK
    rows = [[c["cell"], f"{c['circuits']:,}", f"{c['shots_total']:,}", c["submissions"], f"{c['tasks']:,}",
             f"{c['qpu_seconds']:.1f}", f"{c['wall_time_s']:.1f}", f"{c['cost']:.2f}"] for c in est.cells]
    if args.per_cell:
        print(_table(["cell", "circuits", "shots", "requests", "tasks/jobs", "QPU s", "wall s", "cost"], rows))
    t = est.totals
    print(f"\n{t['cells']} cells: up to {t['circuits']:,} circuits, {t['shots']:,} shots, {t['submissions']:,} "
          f"requests in {t['tasks']:,} provider tasks/jobs, ~{t['qpu_seconds']:.0f}s billed device time, "
          f"~{t['wall_time_s']:.0f}s of backend time, estimated cost {t['cost']:.2f} {est.currency}")
    how = ("a dry run of the study's request schedule" if est.bound_method == "dry run"
           else "analytic, from the methods' cost models (--fast)")
    print(f"(upper bounds, {how}: every loop is counted at its full number of epochs; teachers and every oracle "
          "of both reference ensembles included)")
    x = est.expected
    print(f"expected with typical early stopping: {x['shots']:,} shots, {x['tasks']:,} tasks/jobs, "
          f"estimated cost {x['cost']:.2f} {est.currency}")
    if power:
        print("\n".join(power))
    if reason:
        _err(f"budget: {reason}")
        return EXIT_BUDGET
    return EXIT_OK


def cmd_report(args) -> int:
    from .study.config import load_config
    from .study.finish import finish_study
    from .study.store import ResultsStore

    folder = Path(args.dir)
    if not (folder / "results.sqlite").is_file():
        _err(f"{folder} holds no results.sqlite; run a study first (qmu-hw run CONFIG)")
        return EXIT_INPUT
    _OUTPUT.append(str(folder))
    store = ResultsStore(folder)
    cfg_path = folder / "config.toml"
    # The copy's relative paths (compare_with, profiles) were written against the original
    # config's folder, which the run recorded; older folders fall back to their own folder.
    base = store.get_meta("config_dir") or folder
    cfg = (load_config(cfg_path, output=str(folder), check_backends_now=False, base_dir=base)
           if cfg_path.is_file() else None)
    path = finish_study(folder, cfg, store=store, note="").report
    print(f"report: {path}")
    return EXIT_OK


def cmd_backends(args) -> int:
    from .core.backend import adapter_info
    from .core.profiles import builtin_profiles, load_profile_file

    rows, to_install = [], set()
    for name, path in builtin_profiles().items():
        p = load_profile_file(path)
        info = adapter_info(p)
        extras = sorted({e for _, e in info.requirements if e})
        have = info.credentials_visible()
        if info.missing:
            missing = sorted({e for _, e in info.missing if e})
            to_install.update(missing)
            avail = f"no SDK: qmu-hw[{','.join(missing)}]" if missing else "no SDK"
        else:
            avail = "yes" if have else "needs account"
        rows.append([name, p.adapter, ",".join(extras) or "(core)", info.noise,
                     "exact" if p.shots is None else p.shots, avail, str(path)])
    print(_table(["profile", "adapter", "extra", "noise", "shots", "available", "file"], rows))
    if to_install:
        print(f"\nto use the profiles marked 'no SDK': pip install 'qmu-hw[{','.join(sorted(to_install))}]'")
    return EXIT_OK


def cmd_jobs(args) -> int:
    from .core.journal import JobJournal

    path = Path(args.dir) / "journal.sqlite"
    if not path.is_file() and not (Path(args.dir) / "results.sqlite").is_file():
        _err(f"{args.dir} holds no study (no results.sqlite or journal.sqlite); give a study's output folder")
        return EXIT_INPUT
    entries = JobJournal(path).entries() if path.is_file() else []
    if not entries:
        print(f"{args.dir}: no cloud jobs; this study ran on local backends only (nothing was submitted)")
        return EXIT_OK
    rows = [[e.request_hash[:12], e.backend, e.state, e.rows, "exact" if e.shots is None else e.shots,
             len(e.job_ids), (e.job_ids[-1] if e.job_ids else "-"), (e.error or "")[:60]] for e in entries]
    print(_table(["request", "backend", "state", "rows", "shots", "jobs", "last job id / task ARN", "error"], rows))
    if args.ids:
        for e in entries:
            for job_id in e.job_ids:
                print(f"{e.request_hash[:12]}  {job_id}")
    states = {s: sum(e.state == s for e in entries) for s in ("pending", "submitted", "done", "failed")}
    print("\n" + ", ".join(f"{k}: {v}" for k, v in states.items()))
    return EXIT_OK


def _at_least_one(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {n} (use --dry-run to run no cells)")
    return n


def _plain(text: str) -> str:
    """Docstring text for a terminal: RST roles and literals (``x``, :class:`X`) as plain words."""
    import re

    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    return text.replace("``", "")


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("qmu-hw")
    except PackageNotFoundError:  # a checkout on PYTHONPATH without installation
        ver = "unknown (not installed)"
    ap = argparse.ArgumentParser(prog="qmu-hw", description=_plain(__doc__.splitlines()[0]), epilog=EXIT_CODES,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"qmu-hw {ver}")
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a study grid and write results + report", epilog=EXIT_CODES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("config")
    r.add_argument("--max-cells", type=_at_least_one, default=None,
                   help="run at most N (>= 1) unfinished cells; use --dry-run to run none")
    r.add_argument("--dry-run", action="store_true", help="list the cells that would run; run nothing")
    r.add_argument("--output", help="output folder (overrides [study] output)")
    r.add_argument("--yes", action="store_true", help="confirm submissions to real devices")
    r.add_argument("--workers", type=int, default=1,
                   help="worker processes for local-simulator studies (each uses one core)")
    r.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="where tasks run: local processes, or Ray (pip install 'qmu-hw[ray]'); "
                        "without --address Ray starts locally with --workers CPUs")
    r.add_argument("--address", default=None, help="Ray cluster to join (e.g. HEAD_IP:6379); needs --executor ray")
    r.add_argument("--quiet", action="store_true")
    r.add_argument("--progress", action="store_true", help="progress bars even without a terminal")
    r.set_defaults(fn=cmd_run)
    e = sub.add_parser("estimate", help="circuits, shots, submissions, time and cost before running")
    e.add_argument("config")
    e.add_argument("--per-cell", action="store_true")
    e.add_argument("--no-timing", action="store_true", help="skip the local timing measurement")
    e.add_argument("--fast", action="store_true",
                   help="the analytic bound only (the methods' cost models; what `run` checks up front), "
                        "without the dry run of the study's request schedule")
    e.add_argument("--json", action="store_true",
                   help='print {"bound": {shots, tasks, seconds, cost}, "expected": {...}, "currency"} as JSON')
    e.add_argument("--output")
    e.add_argument("--power", metavar="delta=D[,sigma=S,alpha=A,power=P]",
                   help="the smallest attainable p of the study's seeds and, from sigma or --pilot, the seeds needed "
                        "to detect an effect D")
    e.add_argument("--pilot", metavar="FOLDER", help="a finished pilot study whose spread gives sigma for --power")
    e.set_defaults(fn=cmd_estimate)
    p = sub.add_parser("report", help="rebuild report.md and plots from a results folder")
    p.add_argument("dir")
    p.set_defaults(fn=cmd_report)
    j = sub.add_parser("jobs", help="list the job journal of a results folder")
    j.add_argument("dir")
    j.add_argument("--ids", action="store_true", help="every job id / task ARN, one per line")
    j.set_defaults(fn=cmd_jobs)
    b = sub.add_parser("backends", help="list backend profiles")
    b.set_defaults(fn=cmd_backends)
    for action in sub._choices_actions:  # `qmu-hw run --help` opens with what `run` does
        sub.choices[action.dest].description = action.help
    return ap


def main(argv: list[str] | None = None) -> int:
    from .core.exceptions import (
        BackendUnavailableError,
        BudgetExceededError,
        MissingDependencyError,
        QmuHwError,
    )

    args = build_parser().parse_args(argv)
    try:
        from .adapters.threads import apply_thread_policy

        apply_thread_policy()  # QMU_HW_THREADS (a study's [execution] threads: cmd_run)
        return args.fn(args)
    except BudgetExceededError as exc:
        _debug_trace()
        _err(f"budget: {exc}")
        return EXIT_BUDGET
    except BackendUnavailableError as exc:
        _debug_trace()
        _err(f"backend unavailable: {exc}")
        return EXIT_UNAVAILABLE
    except MissingDependencyError as exc:  # its message ends with the pip install line
        _err(f"backend unavailable: {exc}")
        return EXIT_UNAVAILABLE
    except OSError as exc:
        _debug_trace()
        _err(_os_error_text(exc))
        return EXIT_INPUT
    except (QmuHwError, ValueError) as exc:
        _debug_trace()
        _err(str(exc))
        return EXIT_INPUT
    except KeyboardInterrupt:
        _debug_trace()
        _err("interrupted; finished cells are saved, rerun to resume")
        return EXIT_INTERRUPTED


def _debug_trace() -> None:
    """QMU_HW_DEBUG=1 prints the traceback of a handled error (users see one line)."""
    import os
    import traceback

    if os.environ.get("QMU_HW_DEBUG", "") not in ("", "0"):
        traceback.print_exc()


def _os_error_text(exc: OSError) -> str:
    """An OS error with the path it concerns (a bare ``[Errno 28]`` does not say where)."""
    import errno

    from .core.exceptions import QmuHwError

    if isinstance(exc, QmuHwError):  # qmu-hw's own OS errors already name their path
        return str(exc)
    where = exc.filename or (f"the output folder {_OUTPUT[-1]}" if _OUTPUT else "the output folder")
    if exc.errno == errno.ENOSPC:
        return f"no space left on the device while writing {where}; free space or choose another --output"
    return f"{exc.strerror or exc} ({where})"


if __name__ == "__main__":
    sys.exit(main())
