"""The API feels like the CLI: progress on stderr when asked (or when interactive), and a
StudyResult that prints a one-screen summary (repr and a notebook's HTML)."""

from __future__ import annotations

import qmu_hw.study as study
from qmu_hw.study import api


def tiny(out) -> dict:
    return {
        "study": {"name": "api-display", "output": str(out), "seeds": [0]},
        "data": {"dataset": "iris", "per_class": 15},
        "training": {"epochs": 3, "patience": 2, "n_oracles": 1},
        "grid": {"scenarios": ["class:0"], "methods": ["identity", "ga"], "backends": ["exact"],
                 "shots": ["exact"]},
        "methods": {"ga": {"epochs": 1}},
    }


def test_progress_on_stderr_when_asked_and_silent_when_not(tmp_path, capsys):
    res = study.run(tiny(tmp_path / "a"), progress=True)
    err = capsys.readouterr().err
    assert "training teacher (seed 0) on exact" in err
    assert "cells" in err and "2/2" in err  # the tqdm bar over the grid's cells
    study.run(tiny(tmp_path / "b"), progress=False)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    assert res.summary.ran == 2


def test_progress_auto_follows_the_terminal(monkeypatch):
    class Tty:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

        def write(self, _):
            pass

    monkeypatch.setattr(api.sys, "stderr", Tty(False))
    assert api._interactive() is False
    monkeypatch.setattr(api.sys, "stderr", Tty(True))
    assert api._interactive() is True


def test_repr_is_a_one_screen_summary(tmp_path):
    res = study.run(tiny(tmp_path / "s"), progress=False)
    text = repr(res)
    lines = text.splitlines()
    assert lines[0] == "StudyResult: api-display"
    assert "cells: 2 done, 0 failed, of 2 in the grid" in text
    assert any(ln.split()[:4] == ["class:0", "exact", "exact", "ga"] and ln.split()[4] == "1" for ln in lines)
    assert len(lines) <= 30
    # The same numbers as the store: identity keeps the teacher's forget accuracy.
    df = res.dataframe().set_index("method")
    ident = next(ln for ln in lines if ln.split()[:4] == ["class:0", "exact", "exact", "identity"])
    assert ident.split()[5] == f"{df.loc['identity', 'acc_forget']:.3f}"
    html = res._repr_html_()
    assert html.startswith("<div>") and "<table>" in html and "<td>identity</td>" in html
    assert "api-display" in repr(study.load(tmp_path / "s"))
