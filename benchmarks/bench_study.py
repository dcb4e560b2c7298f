"""Wall time of `qmu-hw run` for the example studies, split into teacher/oracle training,
unlearning and evaluation (each run in a fresh output folder).

    python benchmarks/bench_study.py [quickstart paper_protocol noise_ladder digits_cnn shot_budget]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, "benchmarks")
from common import markdown_table, update_results  # noqa: E402

from qmu_hw.study.config import load_config  # noqa: E402
from qmu_hw.study.report import build_report  # noqa: E402
from qmu_hw.study.runner import StudyRunner  # noqa: E402

TARGETS = {"quickstart": "~60 s", "paper_protocol": "≤30 s", "noise_ladder": "≤15 min", "digits_cnn": "≤5 min",
           "shot_budget": "–"}


def run(name: str) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(f"examples/{name}.toml", output=str(Path(tmp) / name))
        t0 = time.perf_counter()
        runner = StudyRunner(cfg, log=lambda *_: None)
        summary = runner.run()
        rows = runner.store.rows()
        build_report(cfg.output, rows)
        total = time.perf_counter() - t0
    unlearn = sum(r.get("cost_unlearn_wall_s", 0) for r in rows)
    evaluate = sum(r.get("cost_eval_wall_s", 0) for r in rows)
    rest = total - unlearn - evaluate
    print(f"{name}: {total:.1f}s ({summary.ran} cells)", flush=True)
    return [name, str(summary.ran), f"{total:.1f}", f"{rest:.1f}", f"{unlearn:.1f}", f"{evaluate:.1f}",
            TARGETS.get(name, "–")]


def main() -> None:
    names = sys.argv[1:] or ["quickstart", "paper_protocol", "digits_cnn", "noise_ladder"]
    rows = [run(n) for n in names]
    table = markdown_table(["study", "cells", "total wall (s)", "teachers + oracles + report (s)",
                            "unlearning (s)", "evaluation (s)", "target"], rows)
    print(table)
    update_results(f"Study wall times (bench_study.py {' '.join(names)})",
                   "`qmu-hw run` on this machine (2 cores), fresh output folders.\n\n"
                   f"Command: `python benchmarks/bench_study.py {' '.join(names)}`\n\n{table}")


if __name__ == "__main__":
    main()
