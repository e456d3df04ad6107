"""Cohort results: gather the folds' tables, write the metrics and draw the figures."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from connex.evaluation.importance import read_importance, region_importance
from connex.evaluation.metrics import compare_to_baseline, fold_metrics, roc_points, summarise_metrics
from connex.inputs.io import atomic_path, write_tsv
from connex.registry import GRAPH_MODELS, MODALITIES, MODEL_SPECS

# The figures are files: a non-interactive backend, chosen before pyplot is imported.
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

log = logging.getLogger(__name__)

#: How the figures name each model (registry order).
LABELS = {name: spec.label for name, spec in MODEL_SPECS.items()}


def _read_all(paths: list[str | Path]) -> pd.DataFrame:
    tables = [pd.read_csv(p, sep="\t") for p in paths if Path(p).stat().st_size > 1]
    tables = [t for t in tables if len(t.columns)]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def write_results(*, prediction_files: list, importance_files: list, permutation_files: list, regions: list[str],
                  classes: list[str], metrics_tsv: str | Path, metrics_per_split_tsv: str | Path,
                  predictions_tsv: str | Path, edge_importance_tsv: str | Path,
                  region_importance_tsv: str | Path, roc_png: str | Path, confusion_png: str | Path,
                  importance_png: str | Path) -> pd.DataFrame:
    """Aggregate the folds of a cross-validation and write every cohort-level result.

    Returns the summary table (``metrics.tsv``: mean and standard deviation over splits, then
    each graph model's paired AUC difference to the best linear baseline,
    :data:`connex.evaluation.metrics.BASELINE_COLUMNS`).
    """
    predictions = _read_all(prediction_files)
    per_split = fold_metrics(predictions)
    permutations = _read_all(permutation_files)
    summary = summarise_metrics(per_split, permutations if len(permutations) else None)
    # every subject is in a test fold once per repeat (k-fold) or once (leave-site-out)
    n_subjects = predictions["participant_id"].nunique()
    summary = summary.merge(compare_to_baseline(per_split, n_subjects=n_subjects), on="model", how="left")
    write_tsv(summary, metrics_tsv)
    write_tsv(per_split, metrics_per_split_tsv)
    write_tsv(predictions, predictions_tsv)
    edges = pd.concat([read_importance(f) for f in importance_files], ignore_index=True)
    edge_mean = edges.groupby(["model", "modality", "kind", "region_i", "region_j"], as_index=False
                              )["importance"].agg(["mean", "std"]).rename(columns={"mean": "importance"})
    edge_mean["region_i_name"] = [regions[i - 1] for i in edge_mean["region_i"]]
    edge_mean["region_j_name"] = [regions[j - 1] for j in edge_mean["region_j"]]
    write_tsv(edge_mean, edge_importance_tsv)
    regional = region_importance(edge_mean, regions)
    write_tsv(regional, region_importance_tsv)
    plot_roc(predictions, roc_png)
    plot_confusion(predictions, classes, confusion_png)
    plot_importance(edge_mean, regional, regions, importance_png)
    for row in summary.itertuples():
        log.info("%-20s AUC %.3f +- %.3f, balanced accuracy %.3f +- %.3f", row.model, row.roc_auc_mean,
                 row.roc_auc_std, row.balanced_accuracy_mean, row.balanced_accuracy_std)
        if isinstance(row.best_baseline, str):
            log.info("%-20s vs %s: AUC difference %+.3f, won %s of %s splits (%s tied), corrected t-test p %.3g",
                     "", row.best_baseline, row.auc_diff_mean, row.splits_won, row.n_splits_paired,
                     row.splits_tied, row.auc_diff_p)
    return summary


def _save(figure, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)


def plot_roc(predictions: pd.DataFrame, target: str | Path) -> None:
    """Mean ROC curve of each model over splits, shaded by one standard deviation."""
    grid = np.linspace(0, 1, 101)
    figure, axis = plt.subplots(figsize=(5.5, 5))
    for model in [m for m in LABELS if m in set(predictions["model"])]:
        curves = roc_points(predictions, model, grid)
        if not len(curves):
            continue
        mean, std = curves.mean(0), curves.std(0)
        line, = axis.plot(grid, mean, label=f"{LABELS[model]}", lw=2 if model == "connex" else 1.2)
        axis.fill_between(grid, np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1), color=line.get_color(),
                          alpha=0.12)
    axis.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    axis.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC over test folds (mean ± sd)")
    axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    _save(figure, target)


def plot_confusion(predictions: pd.DataFrame, classes: list[str], target: str | Path) -> None:
    """Confusion matrix of each model, summed over splits (each subject counted once per repeat)."""
    models = [m for m in LABELS if m in set(predictions["model"])]
    figure, axes = plt.subplots(1, len(models), figsize=(2.6 * len(models), 2.9), squeeze=False)
    for axis, model in zip(axes[0], models):
        table = predictions[predictions["model"] == model]
        matrix = confusion_matrix(table["y_true"], table["y_pred"], labels=range(len(classes)))
        axis.imshow(matrix, cmap="Blues")
        for (i, j), value in np.ndenumerate(matrix):
            axis.text(j, i, str(value), ha="center", va="center",
                      color="white" if value > matrix.max() / 2 else "black")
        axis.set(xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes,
                 yticklabels=classes, xlabel="predicted", title=LABELS[model])
        axis.title.set_fontsize(8)
    axes[0, 0].set_ylabel("true")
    figure.tight_layout()
    _save(figure, target)


def plot_importance(edges: pd.DataFrame, regional: pd.DataFrame, regions: list[str], target: str | Path) -> None:
    """Edge importance (a matrix per modality) of the first graph model compared (ConneX, else its
    single-modality version or the early-fusion GNN) and its ten most important regions per modality."""
    n = len(regions)
    shown = next((m for m in GRAPH_MODELS if m in set(edges["model"])), None)
    label = LABELS.get(shown, "no graph model")
    connex = edges[edges["model"] == shown]
    kind = "edge_mask" if (connex["kind"] == "edge_mask").any() else "saliency"
    modalities = [m for m in MODALITIES if (connex["modality"] == m).any()] or list(MODALITIES)
    figure, axes = plt.subplots(2, len(modalities), figsize=(5 * len(modalities), 9), squeeze=False,
                                gridspec_kw={"height_ratios": [1.2, 1]})
    for column, modality in enumerate(modalities):
        table = connex[(connex["modality"] == modality) & (connex["kind"] == kind)]
        matrix = np.zeros((n, n))
        matrix[table["region_i"] - 1, table["region_j"] - 1] = table["importance"]
        matrix += matrix.T
        axis = axes[0, column]
        image = axis.imshow(matrix, cmap="magma")
        axis.set_title(f"{label}: {modality.upper()} edge importance ({kind.replace('_', ' ')})", fontsize=9)
        axis.set(xlabel="region", ylabel="region")
        figure.colorbar(image, ax=axis, fraction=0.046)
        top = regional[(regional["model"] == shown) & (regional["modality"] == modality)
                       & (regional["kind"] == kind)]
        top = top.assign(importance=top["importance"].astype(float)).nlargest(10, "importance")
        axes[1, column].barh(top["region_name"][::-1], top["importance"][::-1], color="#4c72b0")
        axes[1, column].set_title(f"Top regions ({modality.upper()})", fontsize=9)
        axes[1, column].tick_params(labelsize=7)
    figure.tight_layout()
    _save(figure, target)
