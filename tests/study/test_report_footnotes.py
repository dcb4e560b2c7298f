from qmu_hw.study.report import PAPER_NAMES, build_report


def _row(method, seed):
    return {"method": method, "scenario": "class:0", "backend": "exact", "shots": None, "seed": seed,
            "acc_forget": 0.5, "acc_forget_oracle": 0.0, "acc_test": 0.9, "acc_test_oracle": 0.9, "uqi": 0.1,
            "js_forget": 0.2, "js_forget_oracle_floor": 0.01, "mia_pop_auc": 0.5, "cost_shots": 0, "cost_circuits": 10,
            "acc_test_retained": 0.9, "acc_forget_gap": 0.5, "excess": 0.19, "within_oracle_spread": 0.0,
            "excess_exact": 0.19}


def test_certified_is_footnoted_as_uncertified_noisy_fine_tuning(tmp_path):
    path = build_report(tmp_path, [_row("certified", 0), _row("ga", 0), _row("retrain", 0)])
    text = path.read_text()
    assert "| certified¹ |" in text and "| ga |" in text
    assert "¹ `certified` is noisy fine-tuning on the retain set" in text and "no unlearning certificate" in text
    plain = build_report(tmp_path, [_row("ga", 0), _row("retrain", 0)]).read_text()
    assert "¹" not in plain


def test_the_papers_fisher_row_is_compared_with_fisher_ewc():
    assert PAPER_NAMES["fisher-ewc"] == "Fisher" and "fisher" not in PAPER_NAMES
