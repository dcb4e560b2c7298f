"""A study folder's one-screen summary: what ``repr(StudyResult)`` prints and what a notebook
shows (``_repr_html_``) — the cells, the failures and each method's mean accuracies.

Means only, labelled with their n: the report (``report.md``) carries the confidence intervals
and the tests; this is the glance that says whether the run is the one you meant.
"""

from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path
from statistics import fmean

MAX_ROWS = 20  # one screen
COLUMNS = ("scenario", "backend", "shots", "method", "n", "forget acc", "test acc")


def _mean(values) -> str:
    vals = [v for v in values if isinstance(v, (int, float)) and v == v]
    return f"{fmean(vals):.3f}" if vals else "-"


def summary_data(output: Path, name: str | None) -> dict:
    """``{"title", "facts": [(label, value)], "rows": [...], "more": int}`` for ``output``."""
    from .store import ResultsStore

    if not (output / "results.sqlite").is_file():
        return {"title": f"StudyResult {output}", "facts": [("cells", "none yet (no results.sqlite)")],
                "rows": [], "more": 0}
    store = ResultsStore(output)
    current = store.get_meta("current_cells")
    cells = set(current) if current else None
    done = store.rows(cells)
    failed = store.rows(cells, status="failed")
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in done:
        groups[(r["scenario"], r["backend"], "exact" if r["shots"] is None else r["shots"], r["method"])].append(r)
    rows = [[*key, len(rs), _mean(r.get("acc_forget") for r in rs), _mean(r.get("acc_test") for r in rs)]
            for key, rs in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0])))]
    total = len(cells) if cells else len(done) + len(failed)
    facts = [("folder", str(output)),
             ("cells", f"{len(done)} done, {len(failed)} failed, of {total} in the grid"),
             ("backends", ", ".join(sorted({str(r['backend']) for r in done})) or "-"),
             ("methods", str(len({r['method'] for r in done})))]
    if (output / "report.md").is_file():
        facts.append(("report", str(output / "report.md")))
    for r in failed[:3]:
        facts.append(("failed", f"{r['scenario']} / {r['backend']} / {r['method']} (seed {r['seed']}): "
                                f"{str(r.get('error') or '')[:80]}"))
    return {"title": f"StudyResult: {name or output.name}", "facts": facts,
            "rows": rows[:MAX_ROWS], "more": max(0, len(rows) - MAX_ROWS)}


def summary_text(data: dict) -> str:
    lines = [data["title"]] + [f"  {k}: {v}" for k, v in data["facts"]]
    if data["rows"]:
        table = [list(COLUMNS)] + [[str(x) for x in r] for r in data["rows"]]
        widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
        lines.append("  mean over seeds (n = seeds; CIs and tests in report.md):")
        lines += ["    " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
        if data["more"]:
            lines.append(f"    ... {data['more']} more rows (StudyResult.dataframe())")
    return "\n".join(lines)


def summary_html(data: dict) -> str:
    e = html.escape
    out = [f"<div><strong>{e(data['title'])}</strong><ul>"]
    out += [f"<li>{e(k)}: {e(str(v))}</li>" for k, v in data["facts"]]
    out.append("</ul>")
    if data["rows"]:
        out.append("<table><caption>mean over seeds (n = seeds; CIs and tests in report.md)</caption><tr>")
        out += [f"<th>{e(c)}</th>" for c in COLUMNS]
        out.append("</tr>")
        for r in data["rows"]:
            out.append("<tr>" + "".join(f"<td>{e(str(x))}</td>" for x in r) + "</tr>")
        out.append("</table>")
        if data["more"]:
            out.append(f"<p>... {data['more']} more rows (<code>StudyResult.dataframe()</code>)</p>")
    out.append("</div>")
    return "".join(out)
