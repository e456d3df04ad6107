"""Classification metrics per fold and their summary over folds and repeats; ROC points."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from connex.registry import MODELS

METRICS = ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "roc_auc", "f1")


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


def roc_points(predictions: pd.DataFrame, model: str, grid: np.ndarray) -> np.ndarray:
    """Interpolated true-positive rate of each split on a false-positive-rate grid, ``(splits, len(grid))``."""
    curves = []
    for _, table in predictions[predictions["model"] == model].groupby("split"):
        if table["y_true"].nunique() < 2:
            continue
        fpr, tpr, _ = roc_curve(table["y_true"], table["score"])
        curves.append(np.interp(grid, fpr, tpr))
    return np.array(curves)
