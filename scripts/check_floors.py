#!/usr/bin/env python
"""Check the dependency floors declared in pyproject.toml against an environment.

For every requirement of the core and of every extra: is it installed, is its version at
or above the declared floor, and are the APIs qmu-hw calls present (``API`` below — keep it
in step with the code)? Run it in the environment under test:

    python scripts/check_floors.py                  # the current environment
    python scripts/check_floors.py --constraints floors.txt

This cannot install old versions itself (offline). The honest check *at* the floors is a CI
job that installs exactly the floors and runs this script and the tests there:

    python scripts/check_floors.py --constraints floors.txt
    pip install -c floors.txt '.[dev]' && python scripts/check_floors.py --exact && pytest

``--exact`` additionally requires every installed version to EQUAL its floor. Exit status:
0 all good, 1 a problem (each printed with what was expected and what was found).
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from importlib import metadata
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]

# distribution -> the "module:attribute.path" names qmu-hw uses from it.
API = {
    "numpy": ["numpy.random:default_rng"],
    "scipy": ["scipy.special:log_expit", "scipy.stats:rankdata", "scipy.optimize:minimize",
              "scipy.stats:false_discovery_control"],
    "torch": ["torch:Tensor.index_add", "torch.autograd:Function"],
    "tqdm": ["tqdm.auto:tqdm"],
    "matplotlib": ["matplotlib.pyplot:subplots"],
    "qiskit": ["qiskit.primitives:StatevectorEstimator", "qiskit.transpiler:generate_preset_pass_manager",
               "qiskit.circuit:ParameterExpression.numeric", "qiskit.circuit:ParameterExpression.gradient",
               "qiskit.qasm3:loads", "qiskit:transpile"],
    "qiskit-aer": ["qiskit_aer:AerSimulator.from_backend", "qiskit_aer.noise:NoiseModel.from_backend",
                   "qiskit_aer.noise:depolarizing_error", "qiskit_aer.noise:thermal_relaxation_error"],
    "qiskit-qasm3-import": ["qiskit_qasm3_import:parse"],
    "qiskit-ibm-runtime": ["qiskit_ibm_runtime:EstimatorV2", "qiskit_ibm_runtime:Batch",
                           "qiskit_ibm_runtime:Session", "qiskit_ibm_runtime:QiskitRuntimeService",
                           "qiskit_ibm_runtime.fake_provider:FakeManilaV2"],
    "amazon-braket-sdk": ["braket.program_sets:ProgramSet", "braket.program_sets:CircuitBinding",
                          "braket.tracking:Tracker", "braket.devices:LocalSimulator", "braket.aws:AwsDevice",
                          "braket.circuits:FreeParameter"],
    "pennylane": ["pennylane.workflow:construct_tape", "pennylane.transforms:decompose",
                  "pennylane.tape:make_qscript", "pennylane:DepolarizingChannel"],
    "ray": ["ray:remote"],
}
REQ = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(\[[^\]]*\])?\s*(>=\s*([0-9][^,;\s]*))?")


def version_tuple(v: str) -> tuple[int, ...]:
    """The numeric release part: ``"1.127.5.post0"`` → ``(1, 127, 5)``."""
    out = []
    for part in v.split("."):
        m = re.match(r"\d+", part)
        if not m:
            break
        out.append(int(m.group()))
    return tuple(out)


def floors(pyproject: Path) -> dict[str, tuple[str | None, list[str]]]:
    """distribution → (floor or None, groups that require it), skipping self-references."""
    data = tomllib.loads(pyproject.read_text())["project"]
    groups = {"core": data.get("dependencies", []), **data.get("optional-dependencies", {})}
    out: dict[str, tuple[str | None, list[str]]] = {}
    for group, reqs in groups.items():
        for req in reqs:
            if ";" in req:  # an environment marker, e.g. tomli only before Python 3.11
                try:
                    from packaging.markers import Marker
                except ImportError:
                    continue
                if not Marker(req.split(";", 1)[1]).evaluate():
                    continue
            m = REQ.match(req)
            name = m.group(1).lower()
            if name == data["name"]:
                continue
            floor = m.group(4)
            old = out.get(name, (None, []))
            out[name] = (max(filter(None, [old[0], floor]), key=version_tuple, default=None), old[1] + [group])
    return out


def has_api(spec: str) -> bool:
    module, _, attrs = spec.partition(":")
    try:
        obj = importlib.import_module(module)
    except Exception:  # noqa: BLE001 - any import failure means the API is unusable
        return False
    for a in attrs.split("."):
        if not hasattr(obj, a):
            return False
        obj = getattr(obj, a)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pyproject", default=str(ROOT / "pyproject.toml"))
    ap.add_argument("--constraints", help="write 'dist==floor' lines to this file (for a CI job at the floors)")
    ap.add_argument("--exact", action="store_true", help="require installed == floor (run after installing the floors)")
    ap.add_argument("--only-installed", action="store_true", help="skip extras that are not installed")
    args = ap.parse_args(argv)
    table = floors(Path(args.pyproject))
    if args.constraints:
        lines = [f"{name}=={floor}" for name, (floor, _) in sorted(table.items()) if floor]
        Path(args.constraints).write_text("\n".join(lines) + "\n")
        print(f"wrote {len(lines)} floor pins to {args.constraints}")
    problems = 0
    for name, (floor, groups) in sorted(table.items()):
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            if args.only_installed and "core" not in groups:
                print(f"skip  {name:22s} not installed ({', '.join(groups)})")
                continue
            print(f"FAIL  {name:22s} not installed; needed by {', '.join(groups)} (floor {floor})")
            problems += 1
            continue
        status = "ok"
        if floor and version_tuple(have) < version_tuple(floor):
            status = f"FAIL: below the floor {floor}"
        elif args.exact and floor and version_tuple(have) != version_tuple(floor):
            status = f"FAIL: --exact wants {floor}"
        missing = [s for s in API.get(name, []) if not has_api(s)]
        if missing:
            status = f"FAIL: API missing: {', '.join(missing)}"
        problems += status != "ok"
        print(f"{'ok  ' if status == 'ok' else 'FAIL'}  {name:22s} {have:14s} floor {floor or '-':8s} "
              f"{len(API.get(name, []))} APIs  {'' if status == 'ok' else status}")
    unknown = sorted(set(API) - set(table))
    if unknown:
        print(f"FAIL  API table names distributions pyproject does not declare: {unknown}")
        problems += 1
    print("all floors hold" if not problems else f"{problems} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
