"""Classification metrics per fold and their summary over folds and repeats; ROC points."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from connex.registry import GRAPH_MODELS, LINEAR_MODELS, MODELS

METRICS = ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "roc_auc", "f1")

#: The columns :func:`compare_to_baseline` adds to ``metrics.tsv``, in their order, and what each holds.
#: Graph models only; empty (``n/a``) for the linear baselines.
BASELINE_COLUMNS = {
    "best_baseline": "the linear baseline with the highest mean test AUC over splits; chosen on the same "
                     "test folds it is compared on (a choice that favours the baseline)",
    "n_splits_paired": "splits where both the model's and the baseline's AUC are defined (both classes in "
                       "the test fold); the others are dropped from every column below",
    "auc_diff_mean": "mean over paired splits of the model's test AUC minus the baseline's",
    "auc_diff_std": "sd (ddof=1) over paired splits of that difference",
    "splits_won": "paired splits where the model's AUC is above the baseline's",
    "splits_tied": "paired splits where the two AUCs are equal (within 1e-12); counted neither as won nor lost",
    "auc_diff_t": "corrected resampled t statistic of the differences (Nadeau & Bengio 2003)",
    "auc_diff_p": "its two-sided p-value, Student t with n_splits_paired - 1 degrees of freedom; "
                  "not corrected for comparing several models",
}


# ----------------------------------------------------------------------------------- metrics

def classification_metrics(y_true: np.ndarray, predicted: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy, sensitivity (recall of class 1), specificity, ROC AUC, F1.

    ``score`` ranks subjects by how likely class 1 is (a probability or decision value).
    Metrics that need both classes in ``y_true`` are NaN when one is absent.
    """
    both = len(np.unique(y_true)) == 2
    has_pos, has_neg = (y_true == 1).any(), (y_true == 0).any()
    return {
        "accuracy": accuracy_score(y_true, predicted),
        "balanced_accuracy": balanced_accuracy_score(y_true, predicted) if both else np.nan,
        "sensitivity": recall_score(y_true, predicted, pos_label=1, zero_division=0) if has_pos else np.nan,
        "specificity": recall_score(y_true, predicted, pos_label=0, zero_division=0) if has_neg else np.nan,
        "roc_auc": roc_auc_score(y_true, score) if both else np.nan,
        "f1": f1_score(y_true, predicted, pos_label=1, zero_division=0),
    }


# ------------------------------------------------------------------------------- aggregation

def fold_metrics(predictions: pd.DataFrame) -> pd.DataFrame:
    """Metrics of every model on every split: one row per (model, split)."""
    rows = []
    for (model, split), table in predictions.groupby(["model", "split"], sort=False):
        metrics = classification_metrics(table["y_true"].to_numpy(), table["y_pred"].to_numpy(),
                                         table["score"].to_numpy())
        rows.append({"model": model, "split": split, "n_test": len(table), **metrics})
    return pd.DataFrame(rows)


def summarise_metrics(per_fold: pd.DataFrame, permutations: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean and standard deviation over splits of each metric, per model (ConneX first).

    With permutation results, adds ``p_value``: (1 + number of permutations whose mean test AUC
    over splits reaches the observed mean AUC) / (1 + number of permutations).
    """
    order = [m for m in MODELS if m in set(per_fold["model"])]
    rows = []
    for model in order:
        table = per_fold[per_fold["model"] == model]
        row = {"model": model, "n_splits": len(table), "n_splits_auc": int(table["roc_auc"].notna().sum())}
        repeat = table["split"].str.extract(r"^r(\d+)f\d+$")[0]
        for metric in METRICS:
            row[f"{metric}_mean"] = table[metric].mean()
            row[f"{metric}_std"] = table[metric].std(ddof=1) if len(table) > 1 else np.nan
        # folds of one repeat share training subjects, so their sd understates the uncertainty;
        # the sd of the repeats' means is the other usual figure
        if repeat.notna().all() and repeat.nunique() > 1:
            for metric in ("roc_auc", "balanced_accuracy"):
                row[f"{metric}_std_repeats"] = table.groupby(repeat)[metric].mean().std(ddof=1)
        if permutations is not None and len(permutations):
            null = permutations[permutations["model"] == model].groupby("permutation")["roc_auc"].mean()
            if len(null):
                row["p_value"] = (1 + int((null >= row["roc_auc_mean"]).sum())) / (1 + len(null))
        rows.append(row)
    return pd.DataFrame(rows)


def corrected_resampled_ttest(differences: np.ndarray, *, test_fraction: float) -> tuple[float, float]:
    """Corrected resampled t-test of paired differences over cross-validation splits.

    The splits of a (repeated) k-fold cross-validation share most of their training subjects, so
    their differences are correlated and the plain one-sample t-test is far too liberal. Nadeau &
    Bengio (2003) inflate the variance for that overlap; in the form of Bouckaert & Frank (2004)
    for repeated k-fold,

        t = mean(d) / sqrt((1 / J + n_test / n_train) * var(d)),   df = J - 1,

    with ``J`` the number of splits and ``var`` the sample variance (ddof=1).

    Parameters
    ----------
    differences : ndarray (J,)
        One paired difference per split (model minus baseline), NaN-free.
    test_fraction : float
        The share of the subjects in each test fold, ``n_test / (n_test + n_train)`` (0.2 for
        5-fold); the correction uses ``n_test / n_train = test_fraction / (1 - test_fraction)``.

    Returns
    -------
    t, p : float
        The statistic and its two-sided p-value from Student's t. Both NaN with fewer than two
        splits or when the differences do not vary (the test is undefined).
    """
    d = np.asarray(differences, dtype=float)
    if d.ndim != 1 or np.isnan(d).any():
        raise ValueError(f"Expected a 1-D array of differences without NaN; got shape {d.shape}.")
    if not 0 < test_fraction < 1:
        raise ValueError(f"'test_fraction' must be between 0 and 1 (exclusive); {test_fraction} was provided.")
    n_splits = len(d)
    variance = d.var(ddof=1) if n_splits > 1 else np.nan
    if not variance > 0:
        return np.nan, np.nan
    t = d.mean() / np.sqrt((1 / n_splits + test_fraction / (1 - test_fraction)) * variance)
    return float(t), float(2 * stats.t.sf(abs(t), df=n_splits - 1))


def compare_to_baseline(per_fold: pd.DataFrame, *, n_subjects: int) -> pd.DataFrame:
    """Paired test-AUC difference of each graph model to the best linear baseline, split by split.

    The best baseline is the linear model (:data:`connex.registry.LINEAR_MODELS`) with the
    highest mean test AUC over its splits, ties to the first in registry order. That choice is
    made on the same test folds the difference is computed on, which favours the baseline. Each
    graph model is paired with it on the splits where both AUCs are defined; splits where either
    is undefined (one class in the test fold) are dropped.

    Parameters
    ----------
    per_fold : DataFrame
        :func:`fold_metrics`: columns ``model``, ``split``, ``n_test``, ``roc_auc``.
    n_subjects : int
        Subjects in the cross-validation (each test fold's ``n_train = n_subjects - n_test``).

    Returns
    -------
    DataFrame
        One row per model of ``per_fold`` in registry order: ``model`` and the columns of
        :data:`BASELINE_COLUMNS`, all empty for linear models, and for graph models when no
        baseline was run. ``auc_diff_t`` and ``auc_diff_p`` come from
        :func:`corrected_resampled_ttest` with ``test_fraction`` the mean ``n_test`` of the
        paired splits over ``n_subjects``.
    """
    present = set(per_fold["model"])
    auc = per_fold.pivot(index="split", columns="model", values="roc_auc")
    baselines = [m for m in LINEAR_MODELS if m in present]
    means = auc[baselines].mean() if baselines else pd.Series(dtype=float)
    best = means.idxmax() if means.notna().any() else None  # idxmax keeps the first of equal maxima
    rows = []
    for model in (m for m in MODELS if m in present):
        row: dict = {"model": model, **dict.fromkeys(BASELINE_COLUMNS, np.nan)}
        if model in GRAPH_MODELS and best is not None:
            paired = auc[[model, best]].dropna()
            diff = (paired[model] - paired[best]).to_numpy()
            n_test = per_fold.loc[(per_fold["model"] == model) & per_fold["split"].isin(paired.index), "n_test"]
            row.update(best_baseline=best, n_splits_paired=len(diff),
                       splits_won=int((diff > 1e-12).sum()), splits_tied=int((np.abs(diff) <= 1e-12).sum()))
            if len(diff):
                row.update(auc_diff_mean=diff.mean(), auc_diff_std=diff.std(ddof=1) if len(diff) > 1 else np.nan)
                row["auc_diff_t"], row["auc_diff_p"] = corrected_resampled_ttest(
                    diff, test_fraction=n_test.mean() / n_subjects)
        rows.append(row)
    table = pd.DataFrame(rows, columns=["model", *BASELINE_COLUMNS])
    for column in ("n_splits_paired", "splits_won", "splits_tied"):
        table[column] = table[column].astype("Int64")
    return table


def roc_points(predictions: pd.DataFrame, model: str, grid: np.ndarray) -> np.ndarray:
    """Interpolated true-positive rate of each split on a false-positive-rate grid, ``(splits, len(grid))``."""
    curves = []
    for _, table in predictions[predictions["model"] == model].groupby("split"):
        if table["y_true"].nunique() < 2:
            continue
        fpr, tpr, _ = roc_curve(table["y_true"], table["score"])
        curves.append(np.interp(grid, fpr, tpr))
    return np.array(curves)
