"""Build the wheel and sdist, install the wheel into fresh venvs and run qmu-hw there.

What a user gets from ``pip install qmu-hw`` (not an editable checkout):

1. ``python -m build`` → ``qmu_hw-*.whl`` and ``qmu_hw-*.tar.gz``; both must hold the shipped
   backend profiles.
2. venv A, the wheel with no extras: ``qmu-hw backends`` lists every shipped profile, a
   two-cell study on ``exact`` runs and writes its results; an Aer study exits 4 naming
   ``pip install 'qmu-hw[aer]'``.
3. venv B, the wheel with ``[aer]``: one Aer cell runs.

Every venv is created under a temporary folder (``--workdir`` to keep them), with ``torch`` pinned
to the version of the interpreter running this script (a CPU wheel from the local index; an
unpinned torch would pull a different build). Needs package registries, no other network.

    python scripts/check_wheel.py [--skip-aer] [--workdir DIR] [--dist DIR]

Exit 0 when every check passed; otherwise the failing step's output and exit 1.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STUDY = """\
[study]
name = "wheel-smoke"
output = "{out}"
seeds = [0]

[data]
dataset = "iris"

[model]
name = "hqml-iris"

[training]
epochs = 5
n_oracles = 1
train_backend = "exact"

[grid]
scenarios = ["class:0"]
methods = {methods}
backends = ["{backend}"]
shots = [{shots}]
"""


class CheckFailed(Exception):
    pass


def run(cmd: list[str], cwd: Path, expect: int = 0, env: dict | None = None) -> str:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    print(f"  $ {' '.join(map(str, cmd))}  -> exit {proc.returncode} ({time.perf_counter() - t0:.1f} s)",
          flush=True)
    if proc.returncode != expect:
        raise CheckFailed(f"{cmd[0]} {' '.join(map(str, cmd[1:3]))}...: expected exit {expect}, got "
                          f"{proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
    return proc.stdout + proc.stderr


def check(cond: bool, what: str) -> None:
    if not cond:
        raise CheckFailed(what)
    print(f"  ok: {what}", flush=True)


def torch_pin() -> str:
    import torch

    return "torch==" + torch.__version__.split("+")[0]


def build(dist: Path) -> tuple[Path, Path]:
    print("build: wheel and sdist", flush=True)
    run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], cwd=ROOT)
    (wheel,) = dist.glob("qmu_hw-*.whl")
    (sdist,) = dist.glob("qmu_hw-*.tar.gz")
    shipped = {Path(n).name for n in zipfile.ZipFile(wheel).namelist() if n.startswith("qmu_hw/_profiles/")}
    in_tree = {p.name for p in (ROOT / "backends").glob("*.toml")}
    check(in_tree <= shipped, f"the wheel ships all {len(in_tree)} profiles as qmu_hw/_profiles/*.toml")
    with tarfile.open(sdist) as tf:
        in_sdist = {Path(n).name for n in tf.getnames() if "/backends/" in n and n.endswith(".toml")}
    check(in_tree <= in_sdist, "the sdist ships backends/*.toml")
    return wheel, sdist


def venv(where: Path, requirement: str) -> Path:
    print(f"venv {where.name}: {requirement}", flush=True)
    run([sys.executable, "-m", "venv", str(where)], cwd=where.parent)
    pip = [str(where / "bin" / "python"), "-m", "pip", "install", "-q"]
    run(pip + [torch_pin()], cwd=where.parent)
    run(pip + [requirement], cwd=where.parent)
    return where / "bin"


def study(bin_: Path, work: Path, name: str, backend: str, shots: str, methods: list[str],
          expect: int = 0) -> str:
    cfg = work / f"{name}.toml"
    cfg.write_text(STUDY.format(out=name, backend=backend, shots=shots, methods=methods).replace("'", '"'))
    # A clean environment: nothing of this checkout (PYTHONPATH) may leak into the venv.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return run([str(bin_ / "qmu-hw"), "run", str(cfg)], cwd=work, expect=expect, env=env)


def results(folder: Path) -> list[dict]:
    with open(folder / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def core_venv(wheel: Path, work: Path) -> None:
    bin_ = venv(work / "venv-core", str(wheel))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = run([str(bin_ / "python"), "-c", "import qmu_hw; print(qmu_hw.__file__)"], cwd=work, env=env)
    check(str(work / "venv-core") in where, f"qmu_hw is imported from the venv ({where.strip()})")
    listing = run([str(bin_ / "qmu-hw"), "backends"], cwd=work, env=env)
    names = {p.stem for p in (ROOT / "backends").glob("*.toml")}
    check(all(f"\n{n} " in "\n" + listing for n in names), f"`qmu-hw backends` lists all {len(names)} profiles")
    check("pip install 'qmu-hw[" in listing, "`qmu-hw backends` names the extras to install")
    study(bin_, work, "exact-study", "exact", '"exact"', ["identity", "ga"])
    rows = results(work / "exact-study")
    check(sorted(r["method"] for r in rows) == ["ga", "identity"] and all(r["backend"] == "exact" for r in rows),
          "a 2-cell study on exact ran in the wheel install (results.csv: ga, identity)")
    check(not (work / "exact-study" / ".lock").exists(), "no .lock is left after the run")
    out = study(bin_, work, "aer-missing", "aer-ideal", "256", ["identity"], expect=4)
    check("pip install 'qmu-hw[aer]'" in out, "an Aer study without the [aer] extra exits 4 naming the extra")


def aer_venv(wheel: Path, work: Path) -> None:
    bin_ = venv(work / "venv-aer", f"{wheel}[aer]")
    study(bin_, work, "aer-study", "aer-ideal", "256", ["ga"])
    rows = results(work / "aer-study")
    check(len(rows) == 1 and rows[0]["backend"] == "aer-ideal" and rows[0]["method"] == "ga",
          "one Aer cell ran in the wheel[aer] install")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", help="keep the build and venvs here (default: a temporary folder)")
    ap.add_argument("--dist", help="use the wheel already built in DIR (skip the build)")
    ap.add_argument("--skip-aer", action="store_true", help="skip the [aer] venv")
    args = ap.parse_args(argv)
    tmp = None
    if args.workdir:
        work = Path(args.workdir).resolve()
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="qmu-hw-wheel-")
        work = Path(tmp.name)
    t0 = time.perf_counter()
    try:
        if args.dist:
            (wheel,) = Path(args.dist).glob("qmu_hw-*.whl")
        else:
            wheel, _ = build(work / "dist")
        core_venv(wheel, work)
        if not args.skip_aer:
            aer_venv(wheel, work)
    except CheckFailed as exc:
        print(f"check_wheel: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if tmp is not None:
            tmp.cleanup()
    print(f"check_wheel: all checks passed in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
