"""The report's plots: legends outside the data, zero-cost methods (identity) still on the
cost plot's axis, one legend entry per meaning in the metric panels."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as real_plt  # noqa: E402

from qmu_hw.study.report import ORACLE_LINE, _plot_cost, _plot_vs_noise  # noqa: E402


class KeepFigures:
    """pyplot for the plot functions, keeping every figure open for inspection."""

    def __init__(self):
        self.figs = []

    def subplots(self, *a, **k):
        fig, axes = real_plt.subplots(*a, **k)
        self.figs.append(fig)
        return fig, axes

    def close(self, fig):
        pass


def _row(method, seed, backend="exact", shots=None, circuits=10, level=0.0):
    return {"method": method, "scenario": "class:0", "backend": backend, "shots": shots, "seed": seed,
            "acc_forget": 0.5 - level, "acc_forget_oracle": 0.0, "acc_test": 0.9, "acc_test_retained": 0.9,
            "uqi": 0.1, "js_forget": 0.2 + level, "js_forget_floor_mean": 0.01, "js_forget_floor_threshold": 0.03,
            "mia_pop_auc": 0.5, "cost_shots": 0, "cost_circuits": circuits, "acc_forget_gap": 0.5 - level}


def _rows():
    rows = []
    for seed in (0, 1, 2):
        for b, lv in (("exact", 0.0), ("dm-depol-0.01", 0.1)):
            rows += [_row("identity", seed, b, circuits=0, level=lv), _row("ga", seed, b, circuits=1200, level=lv),
                     _row("scrub", seed, b, circuits=40_000, level=lv)]
    return rows


def _inside(inner, outer) -> bool:
    return inner.x0 >= outer.x0 and inner.x1 <= outer.x1 and inner.y0 >= outer.y0 and inner.y1 <= outer.y1


def test_cost_plot_keeps_identity_and_puts_the_legend_outside(tmp_path):
    plt = KeepFigures()
    assert _plot_cost(_rows(), "class:0", tmp_path, plt).is_file()
    (fig,) = plt.figs
    ax = fig.axes[0]
    fig.canvas.draw()
    by_label = {c.get_label(): c for c in ax.collections}
    assert set(by_label) == {"identity", "ga", "scrub"}
    xs = by_label["identity"].get_offsets()[:, 0]
    lo, hi = ax.get_xlim()
    assert (xs == 0).all() and lo < 0 < hi  # 0 circuits is a visible point, not log(0)
    (legend,) = fig.legends
    renderer = fig.canvas.get_renderer()
    lb, ab = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
    assert lb.x0 >= ab.x1 - 1  # right of the axes: no point is covered
    assert [t.get_text() for t in legend.get_texts()] == ["ga", "identity", "scrub"]


def test_noise_plot_has_one_legend_entry_per_meaning(tmp_path):
    plt = KeepFigures()
    assert _plot_vs_noise(_rows(), "class:0", tmp_path, plt).is_file()
    (fig,) = plt.figs
    legend_ax = fig.axes[5]
    legends = [a for a in legend_ax.get_children() if isinstance(a, matplotlib.legend.Legend)]
    labels = [t.get_text() for lg in legends for t in lg.get_texts()]
    assert len(labels) == len(set(labels))
    assert labels.count(ORACLE_LINE) == 1
    looks = []
    for lg in legends:
        for h in lg.legend_handles:
            if isinstance(h, matplotlib.lines.Line2D):
                looks.append((h.get_color(), h.get_linestyle(), h.get_marker()))
    dashed_black = [lk for lk in looks if lk[0] in ("k", "black", (0, 0, 0, 1)) and lk[1] == "--"]
    assert len(dashed_black) == 1
    assert {"identity", "ga", "scrub"} <= set(labels)
    for ax in fig.axes[:5]:  # no legend drawn over a data panel
        assert ax.get_legend() is None
