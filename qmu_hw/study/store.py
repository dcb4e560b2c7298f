"""The results store: one SQLite database per output folder, one row per grid cell.

A cell is written in a single transaction when it finishes, so a killed run leaves either a
finished row or a ``running`` marker that the next run redoes. A lock file keeps two runs
from writing the same folder.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import time
from pathlib import Path
from typing import Any

from ..core.exceptions import QmuHwError
from ..core.journal import sqlite_connection

SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    cell_id TEXT PRIMARY KEY,
    config_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    dataset TEXT, scenario TEXT, seed INTEGER, backend TEXT, profile_sha256 TEXT,
    shots INTEGER, method TEXT, axes TEXT,
    metrics TEXT, cost TEXT, versions TEXT,
    started REAL, finished REAL, error TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS noise_effect (
    scenario TEXT, method TEXT, backend TEXT, shots INTEGER, metric TEXT, reference TEXT, n_seeds INTEGER,
    exact_mean REAL, mean REAL, delta REAL, ci_low REAL, ci_high REAL, p_value REAL, p_holm REAL
);
CREATE TABLE IF NOT EXISTS population_outputs (
    key TEXT PRIMARY KEY, kind TEXT, k INTEGER, record TEXT, finished REAL
);
CREATE TABLE IF NOT EXISTS populations (cell_id TEXT PRIMARY KEY, metrics TEXT, finished REAL);
CREATE TABLE IF NOT EXISTS per_example (
    cell_id TEXT, scenario TEXT, method TEXT, backend TEXT, shots INTEGER, seed INTEGER, example_id INTEGER,
    epsilon REAL, bucket INTEGER, bucket_score REAL, n_models INTEGER, axes TEXT
);
CREATE TABLE IF NOT EXISTS noise_slope (
    scenario TEXT, method TEXT, shots INTEGER, metric TEXT, reference TEXT, n_seeds INTEGER, levels TEXT,
    slope REAL, ci_low REAL, ci_high REAL, p_value REAL, p_holm REAL
);
"""
# Tables derived from the finished cells (rewritten whole by ``replace_table``).
DERIVED_TABLES = ("noise_effect", "noise_slope")
KEY_COLUMNS = ("cell_id", "config_hash", "status", "dataset", "scenario", "seed", "backend",
               "profile_sha256", "shots", "method", "started", "finished", "error")


class StudyLockedError(QmuHwError, RuntimeError):
    """Another run holds the output folder's lock."""


class UnwritableOutputError(QmuHwError, OSError):
    """The output folder cannot be created or written."""


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("qmu-hw", "numpy", "torch", "qiskit", "qiskit-aer", "qiskit-ibm-runtime", "amazon-braket-sdk",
                "pennylane", "scikit-learn"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "missing"
    return out


class ResultsStore:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            probe = self.folder / ".write-probe"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise UnwritableOutputError(
                f"output folder {self.folder} is not writable ({exc.strerror}); choose another with --output"
            ) from None
        self.path = self.folder / "results.sqlite"
        with self._connect() as db:
            db.executescript(SCHEMA)
            if "axes" not in {r["name"] for r in db.execute("PRAGMA table_info(cells)")}:
                db.execute("ALTER TABLE cells ADD COLUMN axes TEXT")  # a store from before study axes

    def _connect(self):
        return sqlite_connection(self.path, "results")

    @contextlib.contextmanager
    def lock(self):
        """Exclusive, non-blocking lock on the folder for the duration of a run. The lock file
        is removed when the run ends, so a finished folder holds no ``.lock``."""
        import fcntl

        path = self.folder / ".lock"
        while True:
            fh = open(path, "a+")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                owner = fh.read().strip()
                fh.close()
                raise StudyLockedError(
                    f"another qmu-hw run is writing to {self.folder} (pid {owner or '?'}); wait for it or "
                    "use another output folder"
                ) from None
            # A run that just finished may have unlinked the file we opened: the lock is only
            # ours if it is on the file that is at the path now.
            try:
                if os.fstat(fh.fileno()).st_ino == os.stat(path).st_ino:
                    break
            except FileNotFoundError:
                pass
            fh.close()
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield self
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # while still holding the lock, so no other run can be inside
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()

    def set_meta(self, key: str, value: Any) -> None:
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default=None):
        with self._connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row["value"])

    def statuses(self) -> dict[str, str]:
        with self._connect() as db:
            return {r["cell_id"]: r["status"] for r in db.execute("SELECT cell_id, status FROM cells")}

    def start(self, cell_id: str, config_hash: str, key: dict) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO cells (cell_id, config_hash, status, dataset, scenario, seed, backend,"
                " profile_sha256, shots, method, axes, started) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (cell_id, config_hash, key["dataset"], key["scenario"], key["seed"], key["backend"],
                 key["profile_sha256"], key["shots"], key["method"],
                 json.dumps(key["axes"]) if key.get("axes") else None, time.time()),
            )

    def finish(self, cell_id: str, metrics: dict, cost: dict) -> None:
        """One transaction: the row flips from running to done with all its data."""
        with self._connect() as db:
            db.execute(
                "UPDATE cells SET status = 'done', metrics = ?, cost = ?, versions = ?, finished = ?, error = NULL"
                " WHERE cell_id = ?",
                (json.dumps(metrics, default=float), json.dumps(cost, default=float),
                 json.dumps(package_versions()), time.time(), cell_id),
            )

    def fail(self, cell_id: str, error: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE cells SET status = 'failed', error = ?, finished = ? WHERE cell_id = ?",
                       (error, time.time(), cell_id))

    def rows(self, cell_ids: set[str] | None = None, status: str = "done") -> list[dict]:
        """Finished cells as flat dicts: key columns, the study-axis values as ``<table>.<key>``
        columns (``model.n_layers``; only in studies with axes), metrics, ``cost_*``."""
        with self._connect() as db:
            raw = db.execute("SELECT * FROM cells WHERE status = ? ORDER BY started", (status,)).fetchall()
        out = []
        for r in raw:
            if cell_ids is not None and r["cell_id"] not in cell_ids:
                continue
            d = {k: r[k] for k in KEY_COLUMNS}
            d.update(json.loads(r["axes"] or "{}"))
            d.update(json.loads(r["metrics"] or "{}"))
            d.update({f"cost_{k}": v for k, v in json.loads(r["cost"] or "{}").items()})
            out.append(d)
        pops = self.population_metrics()
        for d in out:  # [evaluation.per_example]: the cell's population columns (epsilon_median, ...)
            d.update(pops.get(d["cell_id"], {}))
        return out

    # -- [evaluation.per_example] populations ------------------------------------------------
    # One row per population model (its per-example outputs as JSON lists of floats, never
    # pickle), written as each model arrives: a rerun skips the stored keys. A cell's
    # population metrics and per-example ε are written in one transaction once its population
    # pair is complete.
    def put_population_output(self, record: dict) -> None:
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO population_outputs VALUES (?, ?, ?, ?, ?)",
                       (record["key"], record["kind"], int(record["k"]), json.dumps(record, default=float),
                        time.time()))

    def population_keys(self) -> set[str]:
        with self._connect() as db:
            return {r["key"] for r in db.execute("SELECT key FROM population_outputs")}

    def population_outputs(self, keys) -> dict[str, dict]:
        """Stored model outputs by key (the ``ModelOutputs.as_record()`` dicts) for ``keys``."""
        want = list(keys)
        out = {}
        with self._connect() as db:
            for i in range(0, len(want), 500):
                chunk = want[i:i + 500]
                q = f"SELECT key, record FROM population_outputs WHERE key IN ({', '.join('?' * len(chunk))})"
                out.update({r["key"]: json.loads(r["record"]) for r in db.execute(q, chunk)})
        return out

    def put_population(self, cell_id: str, metrics: dict, example_rows: list[dict], axes: dict | None = None) -> None:
        """A cell's population metrics and per-example ε, replacing earlier ones, in one transaction."""
        ax = json.dumps(axes) if axes else None
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO populations VALUES (?, ?, ?)",
                       (cell_id, json.dumps(metrics, default=float), time.time()))
            db.execute("DELETE FROM per_example WHERE cell_id = ?", (cell_id,))
            db.executemany("INSERT INTO per_example VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           [(cell_id, r["scenario"], r["method"], r["backend"], r["shots"], r["seed"], r["example_id"],
                             r["epsilon"], r["bucket"], r["bucket_score"], r["n_models"], ax) for r in example_rows])

    def population_metrics(self) -> dict[str, dict]:
        with self._connect() as db:
            return {r["cell_id"]: json.loads(r["metrics"]) for r in db.execute("SELECT * FROM populations")}

    def per_example_rows(self, cell_ids: set[str] | None = None) -> list[dict]:
        """``per_example.csv`` rows (with the axis values as ``<table>.<key>`` columns)."""
        with self._connect() as db:
            raw = db.execute("SELECT * FROM per_example ORDER BY rowid").fetchall()
        out = []
        for r in raw:
            if cell_ids is not None and r["cell_id"] not in cell_ids:
                continue
            d = {k: r[k] for k in r.keys() if k != "axes"}
            d.update(json.loads(r["axes"] or "{}"))
            out.append(d)
        return out

    def replace_table(self, name: str, columns, rows: list[dict]) -> None:
        """Rewrite a derived table (e.g. ``noise_effect``) in one transaction."""
        if name not in DERIVED_TABLES:
            raise ValueError(f"unknown derived table {name!r}; expected one of {DERIVED_TABLES}")
        cols = list(columns)
        # A derived table is rewritten whole, so its columns follow the analysis (estimands,
        # axis columns such as "model.n_layers"), not a schema fixed when the store was made.
        quoted = ", ".join('"' + c.replace('"', '""') + '"' for c in cols)
        with self._connect() as db:
            db.execute(f"DROP TABLE IF EXISTS {name}")
            db.execute(f"CREATE TABLE {name} ({quoted})")
            db.executemany(f"INSERT INTO {name} ({quoted}) VALUES ({', '.join('?' * len(cols))})",
                           [tuple(r[c] for c in cols) for r in rows])

    def table(self, name: str) -> list[dict]:
        """The rows of a derived table as dicts."""
        if name not in DERIVED_TABLES:
            raise ValueError(f"unknown derived table {name!r}; expected one of {DERIVED_TABLES}")
        with self._connect() as db:
            return [dict(r) for r in db.execute(f"SELECT * FROM {name}")]

    def count(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM cells").fetchone()[0]

    def to_csv(self, path: str | Path, cell_ids: set[str] | None = None) -> Path:
        rows = self.rows(cell_ids)
        path = Path(path)
        cols: list[str] = []
        for r in rows:
            cols += [k for k in r if k not in cols]
        tmp = path.with_suffix(".tmp")
        try:
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=cols)
                w.writeheader()
                w.writerows(rows)
            tmp.replace(path)
        except OSError as exc:  # e.g. a full disk: a bare Errno would not say which file
            tmp.unlink(missing_ok=True)
            raise UnwritableOutputError(f"cannot write {path} ({exc.strerror or exc}); the results stay in "
                                        f"{self.path}") from None
        return path

    def dataframe(self, cell_ids: set[str] | None = None):
        """The finished cells as a pandas DataFrame (pandas is imported on demand)."""
        import pandas as pd

        return pd.DataFrame(self.rows(cell_ids))
