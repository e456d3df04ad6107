"""Accuracy of the pipeline's outputs against a synthetic cohort's ground truth (registration,
SC, FC), shared by the tests and the benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def registration_accuracy(t1w_path: Path, truth_xfm: np.ndarray, atlas, transforms_to_subject, labels_in_t1w
                          ) -> dict:
    """Displacement error (mm) inside the MNI brain, and per-region Dice in T1w space.

    ``transforms_to_subject(points_mni (n, 3)) -> points_subject (n, 3)`` is the estimated
    MNI -> scanner mapping; the truth is ``inv(truth_xfm)``. ``labels_in_t1w`` is the atlas
    the pipeline put into T1w space; the true one is the atlas seen through the true transform.
    """
    from scipy import ndimage

    from connex.anat.preprocess import load_t1w
    from connex.anat.templates import load_mni_template

    template = load_mni_template(2)
    voxels = np.argwhere(template.brain_mask)[::10]
    mni = voxels @ template.affine[:3, :3].T + template.affine[:3, 3]
    inverse = np.linalg.inv(truth_xfm)
    error = np.linalg.norm(transforms_to_subject(mni) - (mni @ inverse[:3, :3].T + inverse[:3, 3]), axis=1)
    t1w = load_t1w(t1w_path)
    to_atlas = np.linalg.inv(atlas.affine) @ truth_xfm @ t1w.affine
    true_labels = ndimage.affine_transform(atlas.labels, to_atlas[:3, :3], to_atlas[:3, 3],
                                           output_shape=t1w.shape, order=0)
    dice = []
    for index in atlas.table["index"]:
        a, b = labels_in_t1w == index, true_labels == index
        if a.any() or b.any():
            dice.append(2 * (a & b).sum() / (a.sum() + b.sum()))
    return {"mean_error_mm": float(error.mean()), "p95_error_mm": float(np.percentile(error, 95)),
            "median_dice": float(np.median(dice)), "mean_dice": float(np.mean(dice))}


def sc_accuracy(bids_dir: Path, derivatives: Path, atlas: str = "synth", weight: str = "count") -> dict:
    """Accuracy of the SC matrices the workflow wrote for a synthetic cohort, against its truth:
    per-subject ROC AUC (true bundles vs non-edges), Spearman correlation of weights with the
    true bundle strengths on true edges, and where the SZ-HC effect edges rank among all edges
    by the group difference (Welch t of log(1 + count), HC minus SZ)."""
    from scipy import stats
    from sklearn.metrics import roc_auc_score

    from connex.inputs.paths import bids_path

    truth_dir = bids_dir / "derivatives" / "groundtruth"
    participants = pd.read_csv(bids_dir / "participants.tsv", sep="\t")
    aucs, rhos, matrices, labels = [], [], [], []
    for pid, diagnosis in zip(participants["participant_id"], participants["diagnosis"]):
        subject = pid[4:]
        path = bids_path(derivatives, subject=subject, datatype="dwi", suffix="relmat", extension=".tsv", atlas=atlas,
                         stat=weight)
        if not path.exists():
            continue
        estimated = pd.read_csv(path, sep="\t").to_numpy(float)
        true = pd.read_csv(bids_path(truth_dir, subject=subject, datatype=None, suffix="relmat", extension=".tsv",
                                     atlas=atlas, meas="bundlestrength", desc="true"), sep="\t").to_numpy(float)
        upper = np.triu_indices(len(true), 1)
        is_edge = true[upper] > 0
        aucs.append(roc_auc_score(is_edge, estimated[upper]))
        rhos.append(stats.spearmanr(estimated[upper][is_edge], true[upper][is_edge])[0])
        matrices.append(np.log1p(estimated[upper]))
        labels.append(diagnosis)
    matrices, labels = np.array(matrices), np.array(labels)
    effect = pd.read_csv(truth_dir / "group" / "effect_edges.tsv", sep="\t")
    effect = effect[effect["modality"] == "SC"]
    n = round((1 + np.sqrt(1 + 8 * matrices.shape[1])) / 2)
    upper = np.triu_indices(n, 1)
    position = {(i + 1, j + 1): k for k, (i, j) in enumerate(zip(*upper))}
    t, _ = stats.ttest_ind(matrices[labels == "HC"], matrices[labels == "SZ"], equal_var=False)
    t = np.nan_to_num(t, nan=-np.inf)
    order = np.argsort(-t)
    rank = {k: r + 1 for r, k in enumerate(order)}
    effect_ranks = sorted(rank[position[(min(i, j), max(i, j))]]
                          for i, j in zip(effect["region_i"], effect["region_j"]))
    return {"subjects": len(aucs), "auc_median": float(np.median(aucs)), "auc_min": float(np.min(aucs)),
            "spearman_median": float(np.median(rhos)), "effect_edge_ranks": effect_ranks, "n_edges": len(order)}


def upper_correlation(estimated: np.ndarray, true: np.ndarray) -> float:
    upper = np.triu_indices(len(true), 1)
    return float(np.corrcoef(estimated[upper], true[upper])[0, 1])


def true_fc(bids_dir: Path, subject: str, atlas: str, task: str) -> np.ndarray:
    from connex.inputs.paths import bids_path

    truth = bids_path(bids_dir / "derivatives" / "groundtruth", subject=subject, datatype=None, suffix="relmat",
                      extension=".tsv", task=task, atlas=atlas, meas="correlation", desc="true")
    return pd.read_csv(truth, sep="\t").to_numpy(float)


def fc_accuracy(bids_dir: Path, derivatives: Path, atlas: str = "synth", task: str = "rest") -> dict:
    """Accuracy of the correlation matrices the workflow wrote for a synthetic cohort: per-subject
    correlation of the upper triangle with the true FC, and where the FC effect edges rank among
    all edges by the HC-SZ difference (Welch t of Fisher z, HC minus SZ: SZ lacks a shared factor)."""
    from scipy import stats

    from connex.inputs.paths import bids_path

    participants = pd.read_csv(bids_dir / "participants.tsv", sep="\t")
    scores, vectors, labels = [], [], []
    for pid, diagnosis in zip(participants["participant_id"], participants["diagnosis"]):
        subject = pid[4:]
        path = bids_path(derivatives, subject=subject, datatype="func", suffix="relmat", extension=".tsv", task=task,
                         atlas=atlas, stat="correlation")
        if not path.exists():
            continue
        estimated = pd.read_csv(path, sep="\t").to_numpy(float)
        scores.append(upper_correlation(estimated, true_fc(bids_dir, subject, atlas, task)))
        vectors.append(np.arctanh(np.clip(estimated[np.triu_indices(len(estimated), 1)], -0.999, 0.999)))
        labels.append(diagnosis)
    result = {"subjects": len(scores), "r_median": float(np.median(scores)) if scores else float("nan"),
              "r_min": float(np.min(scores)) if scores else float("nan")}
    vectors, labels = np.array(vectors), np.array(labels)
    if {"HC", "SZ"} <= set(labels):
        effect = pd.read_csv(bids_dir / "derivatives" / "groundtruth" / "group" / "effect_edges.tsv", sep="\t")
        effect = effect[effect["modality"] == "FC"]
        n = round((1 + np.sqrt(1 + 8 * vectors.shape[1])) / 2)
        position = {(i + 1, j + 1): k for k, (i, j) in enumerate(zip(*np.triu_indices(n, 1)))}
        t, _ = stats.ttest_ind(vectors[labels == "HC"], vectors[labels == "SZ"], equal_var=False)
        rank = {k: r + 1 for r, k in enumerate(np.argsort(-np.nan_to_num(t, nan=-np.inf)))}
        result["effect_edge_ranks"] = sorted(rank[position[(min(i, j), max(i, j))]]
                                             for i, j in zip(effect["region_i"], effect["region_j"]))
        result["n_edges"] = len(rank)
    return result
