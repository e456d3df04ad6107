"""The HTML report, looked at in headless Chromium."""

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from connex.inputs.bids import build_inventory  # noqa: E402
from connex.inputs.io import write_tsv  # noqa: E402
from connex.report.cohort_qc import cohort_qc_table  # noqa: E402
from connex.report.html import _metrics_html, write_report  # noqa: E402
from tests.browser import CHROMIUM, screenshot  # noqa: E402
from tests.test_cohort_qc import write_subject  # noqa: E402

FLAGGED_RGB = np.array([255, 214, 214]) / 255  # td.flagged in connex/report/html.py's style sheet


def make_report(tiny_cohort, tmp_path, **extra):
    availability = write_tsv(build_inventory(tiny_cohort), tmp_path / "availability.tsv")
    derivatives = tmp_path / "connex"
    sidecars = {"sub-01": write_subject(derivatives, "01"), "sub-02": write_subject(derivatives, "02"),
                "sub-03": write_subject(derivatives, "03", fd=0.9)}
    qc = write_tsv(cohort_qc_table(sidecars), tmp_path / "qc.tsv")
    figure = tmp_path / "sub-01_desc-inputs_qc.png"
    fig, axis = plt.subplots(figsize=(6, 2))
    axis.plot(np.sin(np.linspace(0, 10, 100)))
    fig.savefig(figure)
    plt.close(fig)
    return write_report(availability_tsv=availability, qc_figures={"sub-01": [figure]},
                        out_html=tmp_path / "report.html", dataset=str(tiny_cohort), qc_tsv=qc, **extra)


def test_report_holds_the_qc_table_with_the_flag_and_each_participant(tiny_cohort, tmp_path):
    page = make_report(tiny_cohort, tmp_path).read_text()
    assert "<h2 id='qc'>Cohort QC</h2>" in page and "1 of 3 participants flagged" in page
    assert "Flagged: mean FD 0.9 mm &gt; 0.5 mm" in page  # in sub-03's own section
    assert page.count("<td class='flagged'>0.9</td>") == 1
    assert page.count("data:image/png;base64,") == 1
    for participant in ("sub-01", "sub-02", "sub-03"):
        assert f"<h3 id='{participant}'>" in page and f"<a href='#{participant}'>" in page


def test_report_shows_qc_fc_and_warns_about_a_small_cohort(tiny_cohort, tmp_path):
    summary = {"Participants": 6, "Covariates": ["age", "sex"], "Edges": 1128, "MedianAbsoluteQCFC": 0.5179,
               "MedianAbsoluteQCFCWithoutMotionEffect": 0.5, "FractionSignificant": 0.0603,
               "FractionSignificantFDR": 0.0, "DistanceDependence": -0.0289, "Warning": "6 participants: noisy"}
    (tmp_path / "qcfc.json").write_text(json.dumps(summary))
    page = make_report(tiny_cohort, tmp_path, qcfc_json=tmp_path / "qcfc.json").read_text()
    assert "<h2 id='qcfc'>" in page and "<a href='#qcfc'>" in page
    assert "<th>median |QC-FC|</th><td>0.5179</td>" in page and "<td>age, sex</td>" in page
    assert "<p class='warning'>6 participants: noisy</p>" in page
    assert "id='qcfc'" not in make_report(tiny_cohort, tmp_path).read_text()  # no QC-FC, no section


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium; .ci/run does it as root)")
def test_report_renders_in_headless_chromium(tiny_cohort, tmp_path):
    picture = plt.imread(screenshot(make_report(tiny_cohort, tmp_path), tmp_path / "report.png",
                                    width=1400, height=1200))
    assert picture.shape[:2] == (1200, 1400)
    ink = picture[..., :3].mean(-1) < 0.5
    assert ink.mean() > 0.005  # text and tables drawn, not a blank page
    flagged = np.abs(picture[..., :3] - FLAGGED_RGB).max(-1) < 0.02
    assert flagged.sum() > 200  # the flagged cell's red background, as the browser drew it


def test_metrics_table_shows_each_graph_models_difference_to_the_best_baseline(tmp_path):
    metrics = ("roc_auc", "balanced_accuracy", "accuracy", "sensitivity", "specificity", "f1")
    table = pd.DataFrame({"model": ["connex", "connex_sc", "logistic_regression"], "n_splits": 15,
                          **{f"{m}_{s}": 0.5 for m in metrics for s in ("mean", "std")},
                          "best_baseline": ["logistic_regression", "logistic_regression", None],
                          "n_splits_paired": pd.array([15, 14, None], dtype="Int64"),
                          "auc_diff_mean": [0.031, -0.02, np.nan], "auc_diff_std": [0.05, 0.04, np.nan],
                          "splits_won": pd.array([9, 5, None], dtype="Int64"),
                          "splits_tied": pd.array([0, 2, None], dtype="Int64"),
                          "auc_diff_t": [1.3, -0.9, np.nan], "auc_diff_p": [0.2113, 0.38, np.nan]})
    page = _metrics_html(write_tsv(table, tmp_path / "metrics.tsv"))  # written with n/a, as metrics.tsv is
    assert "<th>vs best linear baseline</th>" in page
    assert "<td>+0.031 AUC vs logistic regression (wins 9/15 splits, p = 0.21)</td>" in page
    assert "<td>-0.020 AUC vs logistic regression (wins 5/14 splits, 2 tied, p = 0.38)</td>" in page
    assert page.count("<td></td>") == 1  # the baseline's own row
    assert "corrected resampled t-test" in page and "picked on the same test folds" in page
    old = _metrics_html(write_tsv(table.iloc[:, :14], tmp_path / "old.tsv"))  # before the comparison existed
    assert "best linear baseline" not in old and "<td>0.500 ± 0.500</td>" in old
