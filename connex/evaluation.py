"""Cross-validated evaluation of ConneX and its baselines on exactly the same splits.

Shape letters: ``s`` subjects, ``n`` regions.

Honesty rules this module keeps: the splits are made once (:func:`make_splits`) and every
model is trained on the same training fold and scored on the same test fold; graph
scaling/thresholds, the linear baselines' scaler and C, early stopping and (optionally) the
hyperparameter search are all fitted inside the training fold.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from connex.dataset import ConnectomeDataset, ConnectomeError
from connex.graphs import (
    WEIGHTING,
    GraphTransform,
    SubjectGraphs,
    collate,
    concatenate_graphs,
    edge_weights,
)
from connex.io import write_json, write_tsv
from connex.training import (
    TrainParams,
    TrainResult,
    predict_proba,
    resolve_device,
    save_checkpoint,
    seed_everything,
    train_model,
    validation_split,
)

log = logging.getLogger(__name__)

#: Every model the evaluation can train, ConneX first.
MODELS = ("connex", "connex_sc", "connex_fc", "early_fusion", "logistic_regression", "linear_svm")
GRAPH_MODELS = ("connex", "connex_sc", "connex_fc", "early_fusion")
SCHEMES = ("kfold", "leave_site_out")
METRICS = ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "roc_auc", "f1")


# ------------------------------------------------------------------------------------ splits

def make_splits(dataset: ConnectomeDataset, *, scheme: str = "kfold", n_folds: int = 5, n_repeats: int = 3,
                seed: int = 0, min_train_per_class: int = 2) -> pd.DataFrame:
    """The cross-validation splits, made once and shared by every model.

    ``kfold``: repeated stratified k-fold (``r01f01``...); ``leave_site_out``: one split per
    site, its subjects the test fold (``site-<name>``).

    Returns a long table: ``split``, ``repeat``, ``fold``, ``participant_id``, ``role``
    (``train`` or ``test``).

    ``min_train_per_class``: each training fold must hold at least this many subjects of each
    class (two: one to fit, one for the validation split; ``inner_folds`` for a nested search).

    Raises
    ------
    ConnectomeError
        Fewer subjects of a class than folds; a training fold short of a class; participants
        without a site, or fewer than two sites, for leave-site-out.
    """
    y = dataset.y
    ids = np.array(dataset.subjects)
    rows = []
    if scheme == "kfold":
        counts = pd.Series(dataset.participants["label"]).value_counts()
        if counts.min() < n_folds:
            raise ConnectomeError(
                f"Stratified {n_folds}-fold cross-validation needs at least {n_folds} subjects of each class; "
                f"the dataset has {counts.to_dict()} (participants: {', '.join(ids)}). Lower model.folds or add subjects.")
        for repeat in range(n_repeats):
            splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed + repeat)
            for fold, (_, test) in enumerate(splitter.split(ids, y)):
                role = np.full(len(ids), "train", dtype=object)
                role[test] = "test"
                rows.append(pd.DataFrame({"split": f"r{repeat + 1:02d}f{fold + 1:02d}", "repeat": repeat + 1,
                                          "fold": fold + 1, "participant_id": ids, "role": role}))
    elif scheme == "leave_site_out":
        no_site = dataset.participants.loc[dataset.participants["site"].isna(), "participant_id"].tolist()
        if no_site:
            raise ConnectomeError(f"Leave-site-out needs a site for every participant; participants.tsv gives none "
                                  f"for {no_site}.")
        sites = dataset.participants["site"].astype(str).to_numpy()
        unique = sorted(set(sites))
        if len(unique) < 2:
            raise ConnectomeError(f"Leave-site-out needs at least two sites; the subjects have {unique}.")
        for fold, site in enumerate(unique):
            role = np.where(sites == site, "test", "train").astype(object)
            rows.append(pd.DataFrame({"split": f"site-{site}", "repeat": 1, "fold": fold + 1,
                                      "participant_id": ids, "role": role}))
    else:
        raise ValueError(f"scheme must be one of {SCHEMES}; {scheme!r} was provided.")
    splits = pd.concat(rows, ignore_index=True)
    labels = dict(zip(dataset.subjects, dataset.participants["label"]))
    for split, table in splits.groupby("split"):
        train = table.loc[table["role"] == "train", "participant_id"].map(labels).value_counts()
        short = [c for c in dataset.classes if train.get(c, 0) < min_train_per_class]
        if short:
            raise ConnectomeError(f"Split {split}: its training fold has {train.to_dict()}; at least "
                                  f"{min_train_per_class} of each class are needed (to fit and to validate). "
                                  "Use fewer folds or add subjects.")
        test = table.loc[table["role"] == "test", "participant_id"].map(labels)
        if test.nunique() < 2:
            log.warning("Split %s: the test fold has one class only (%s); its AUC, balanced accuracy and "
                        "sensitivity or specificity are undefined and left out of the means.", split,
                        test.value_counts().to_dict())
    return splits


def split_indices(dataset: ConnectomeDataset, splits: pd.DataFrame, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) subject indices of one split."""
    table = splits[splits["split"] == split]
    if table.empty:
        raise ValueError(f"No split named {split!r}; splits are {sorted(splits['split'].unique())}.")
    position = {pid: i for i, pid in enumerate(dataset.subjects)}
    train = np.sort([position[p] for p in table.loc[table["role"] == "train", "participant_id"]])
    test = np.sort([position[p] for p in table.loc[table["role"] == "test", "participant_id"]])
    return train, test


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


# ------------------------------------------------------------------------------------ models

def build_graphs(dataset: ConnectomeDataset, train: np.ndarray, *, sparsify: str = "topk", k: int = 8,
                 density: float = 0.1, clip: float | None = 3.0, weighting: dict[str, str] | None = None
                 ) -> dict[str, SubjectGraphs]:
    """Graphs of every subject for each modality, with transforms fitted on ``train`` only.

    ``weighting``: modality -> edge weighting (default :data:`connex.graphs.WEIGHTING`).
    """
    weighting = {**WEIGHTING, **(weighting or {})}
    graphs = {}
    for modality in ("sc", "fc"):
        transform = GraphTransform(weighting[modality], sparsify=sparsify, k=k, density=density, clip=clip)
        transform.fit(dataset.matrices(modality)[train])
        graphs[modality] = transform.transform(dataset.matrices(modality))
    return graphs


def model_inputs(name: str, graphs: dict[str, SubjectGraphs]) -> dict[str, SubjectGraphs]:
    """The graphs a graph model reads: both modalities, one, or the early-fused graph."""
    if name == "connex":
        return {"sc": graphs["sc"], "fc": graphs["fc"]}
    if name == "connex_sc":
        return {"sc": graphs["sc"]}
    if name == "connex_fc":
        return {"fc": graphs["fc"]}
    if name == "early_fusion":
        return {"fused": concatenate_graphs(graphs["sc"], graphs["fc"])}
    raise ValueError(f"Unknown graph model {name!r}; choose from {GRAPH_MODELS}.")


def make_graph_model(name: str, inputs: dict[str, SubjectGraphs], hyper: dict) -> torch.nn.Module:
    """A fresh ConneX (or single-modality ConneX, or early-fusion GNN) for ``inputs``."""
    from connex.model import build_model

    n = next(iter(inputs.values())).n_regions
    in_dims = {k: g.features.shape[2] for k, g in inputs.items()}
    if name == "early_fusion":
        keys = ("backbone", "hidden", "layers", "dropout", "pooling")
        return build_model("early_fusion", n, in_dims, **{k: v for k, v in hyper.items() if k in keys})
    return build_model("connex", n, in_dims, **hyper)


def edge_vectors(dataset: ConnectomeDataset, weighting: dict[str, str] | None = None) -> np.ndarray:
    """Vectorised upper triangles of SC and FC edge weights (default log1p SC, Fisher-z FC),
    ``(s, n (n - 1))``: the features of the linear baselines."""
    weighting = {**WEIGHTING, **(weighting or {})}
    n = len(dataset.regions)
    iu = np.triu_indices(n, 1)
    parts = [edge_weights(dataset.matrices(m), weighting[m])[:, iu[0], iu[1]] for m in ("sc", "fc")]
    return np.concatenate(parts, axis=1)


def fit_linear(name: str, X: np.ndarray, y: np.ndarray, train: np.ndarray, seed: int):
    """Logistic regression or linear SVM with scaling and C chosen by 3-fold CV inside ``train``."""
    if name == "logistic_regression":
        estimator = LogisticRegression(max_iter=5000, random_state=seed)
    elif name == "linear_svm":
        estimator = LinearSVC(max_iter=20000, dual="auto", random_state=seed)
    else:
        raise ValueError(f"Unknown linear model {name!r}.")
    pipeline = make_pipeline(StandardScaler(), estimator)
    inner = min(3, int(np.bincount(y[train]).min()))
    grid = {f"{type(estimator).__name__.lower()}__C": [1e-3, 1e-2, 1e-1, 1.0]}
    if inner >= 2:
        search = GridSearchCV(pipeline, grid, cv=StratifiedKFold(inner, shuffle=True, random_state=seed),
                              scoring="roc_auc")
        search.fit(X[train], y[train])
        return search.best_estimator_
    return pipeline.set_params(**{k: v[1] for k, v in grid.items()}).fit(X[train], y[train])


def linear_scores(model, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(score for class 1, predicted class) of a fitted linear pipeline."""
    score = model.predict_proba(X)[:, 1] if hasattr(model, "predict_proba") else model.decision_function(X)
    return score, model.predict(X)


def saliency(model: torch.nn.Module, inputs: dict[str, SubjectGraphs], index: np.ndarray,
             params: TrainParams) -> dict[str, np.ndarray]:
    """Edge importance ``(n, n)`` per modality: mean |input x gradient| of the fused head's
    class-1 margin with respect to the node features (a node feature is one matrix element)."""
    device = resolve_device(params.device)
    model.to(device).eval()
    index = np.asarray(index)
    total: dict[str, np.ndarray] = {}
    # in batches: the attention's memory grows with batch x tokens^2
    for start in range(0, len(index), params.batch_size):
        chunk = index[start: start + params.batch_size]
        batch = {k: collate(g, chunk).to(device) for k, g in inputs.items()}
        features = [b.x.requires_grad_(True) for b in batch.values()]
        logits = model(batch)["fused"].float()
        # autograd.grad: gradients of the inputs only, the model's parameters keep none
        grads = torch.autograd.grad((logits[:, 1] - logits[:, 0]).sum(), features)
        for (name, b), grad in zip(batch.items(), grads):
            attribution = (b.x * grad).abs().reshape(len(chunk), b.n_nodes, -1).sum(0).detach().cpu().numpy()
            total[name] = total.get(name, 0) + attribution
    out = {}
    for name, attribution in total.items():
        attribution = attribution / len(index)
        n = attribution.shape[0]
        if name == "fused":  # early fusion: SC then FC features side by side
            out["sc"], out["fc"] = attribution[:, :n], attribution[:, n:]
        else:
            out[name] = attribution
    return {k: (v + v.T) / 2 for k, v in out.items()}


# -------------------------------------------------------------------------------- one fold

def run_fold(dataset: ConnectomeDataset, splits: pd.DataFrame, split: str, *, models: list[str],
             graph_params: dict, model_params: dict, train_params: TrainParams, val_fraction: float = 0.2,
             search: dict | None = None, inner_folds: int = 3, permutations: int = 0,
             checkpoint_dir: str | Path | None = None, progress: bool = False) -> dict[str, pd.DataFrame]:
    """Train and test every model on one split.

    Parameters
    ----------
    graph_params : dict
        ``sparsify``, ``k``, ``density`` (see :class:`connex.graphs.GraphTransform`).
    model_params : dict
        ConneX hyperparameters (see :class:`connex.model.ConneX`).
    search : dict, optional
        Nested search: hyperparameter name -> candidate values; each graph model picks the
        combination with the best mean validation AUC over ``inner_folds`` folds of the
        training fold (the test fold is never seen).
    permutations : int
        Retrain every model this many times on permuted training labels (for a p-value).
    checkpoint_dir : path, optional
        Where each graph model's state dict is saved (``split-<split>_model-<name>.pt``).

    Returns
    -------
    dict of DataFrame
        ``predictions`` (one row per test subject and model), ``importance`` (edge importance
        of the graph models and the logistic regression, long format), ``history`` (learning
        curves), ``permutations`` (test AUC per model and permutation; empty without), ``info``.
    """
    unknown = set(models) - set(MODELS)
    if unknown:
        raise ValueError(f"Unknown model(s) {sorted(unknown)}; choose from {MODELS}.")
    if search and permutations:
        raise ValueError("A permutation test with a nested search would need the search rerun for every "
                         "permutation (otherwise the null is a different procedure); use one or the other.")
    train, test = split_indices(dataset, splits, split)
    y = dataset.y
    seed = train_params.seed
    fit, val = validation_split(y, train, fraction=val_fraction, seed=seed)
    graphs = build_graphs(dataset, train, **graph_params)
    X = edge_vectors(dataset, graph_params.get("weighting")) if {"logistic_regression", "linear_svm"} & set(models) else None
    predictions, importance, history, info, permuted = [], [], [], {"split": split}, []
    n = len(dataset.regions)
    iu = np.triu_indices(n, 1)

    for name in models:
        start = time.perf_counter()
        if name in GRAPH_MODELS:
            inputs = model_inputs(name, graphs)
            hyper = dict(model_params)
            if search:
                hyper.update(select_hyperparameters(name, dataset, train, graph_params, model_params, train_params,
                                                    search, inner_folds=inner_folds, val_fraction=val_fraction))
                info[f"{name}_hyperparameters"] = {k: hyper[k] for k in search}
            model, params, result = fit_graph_model(name, inputs, hyper, y, fit, val, train_params, seed=seed,
                                                    progress=progress, description=f"{split} {name}")
            probability = predict_proba(model, inputs, test, params)[:, 1]
            score, predicted = probability, (probability >= 0.5).astype(int)
            history.append(result.history.assign(model=name))
            info[f"{name}_best_epoch"] = result.best_epoch
            for modality, matrix in saliency(model, inputs, test, params).items():
                importance.append(_edge_table(name, modality, "saliency", matrix[iu], iu))
            for modality, matrix in getattr(model, "edge_importance", lambda: {})().items():
                importance.append(_edge_table(name, modality, "edge_mask", matrix[iu], iu))
            if checkpoint_dir is not None:
                save_checkpoint(model, Path(checkpoint_dir) / f"split-{split}_model-{name}.pt")
        else:
            estimator = fit_linear(name, X, y, train, seed)
            score, predicted = linear_scores(estimator, X[test])
            if name == "logistic_regression":
                coef = np.abs(estimator[-1].coef_.ravel())
                half = len(iu[0])
                importance.append(_edge_table(name, "sc", "coefficient", coef[:half], iu))
                importance.append(_edge_table(name, "fc", "coefficient", coef[half:], iu))
        info[f"{name}_seconds"] = round(time.perf_counter() - start, 2)
        predictions.append(pd.DataFrame({
            "split": split, "model": name, "participant_id": np.array(dataset.subjects)[test],
            "label": np.array(dataset.classes)[y[test]], "y_true": y[test], "score": score,
            "y_pred": predicted, "predicted": np.array(dataset.classes)[predicted]}))
        log.info("%s %s: test AUC %.3f (%.1f s)", split, name,
                 classification_metrics(y[test], predicted, score)["roc_auc"], info[f"{name}_seconds"])
        for p in range(permutations):
            permuted.append({"split": split, "model": name, "permutation": p + 1,
                             "roc_auc": _permuted_auc(name, dataset, X, graphs, y, train, test, fit, val, p,
                                                      model_params, train_params)})
    info.update(n_train=len(train), n_validation=len(val), n_test=len(test))
    return {"predictions": pd.concat(predictions, ignore_index=True),
            "importance": pd.concat(importance, ignore_index=True) if importance else pd.DataFrame(),
            "history": pd.concat(history, ignore_index=True) if history else pd.DataFrame(),
            "permutations": pd.DataFrame(permuted, columns=["split", "model", "permutation", "roc_auc"]),
            "info": info}


def fit_graph_model(name: str, inputs: dict[str, SubjectGraphs], hyper: dict, y: np.ndarray, fit: np.ndarray,
                    val: np.ndarray, train_params: TrainParams, *, seed: int, **options
                    ) -> tuple[torch.nn.Module, TrainParams, TrainResult]:
    """A fresh graph model (initialised from ``seed``) trained on ``fit``, early-stopped on ``val``.

    Returns the model, the training parameters it used (loss weights of its heads) and the
    training result. ``options`` go to :func:`connex.training.train_model`.
    """
    seed_everything(seed)
    model = make_graph_model(name, inputs, hyper)
    params = _params_for(name, train_params)
    return model, params, train_model(model, inputs, y, fit, val, params, **options)


def _params_for(name: str, params: TrainParams) -> TrainParams:
    """Loss weights restricted to the heads the model has."""
    heads = {"connex": ("sc", "fc", "fused"), "connex_sc": ("sc", "fused"), "connex_fc": ("fc", "fused"),
             "early_fusion": ("fused",)}[name]
    return replace(params, loss_weights={h: params.loss_weights[h] for h in heads})


def _edge_table(model: str, modality: str, kind: str, values: np.ndarray, iu) -> pd.DataFrame:
    return pd.DataFrame({"model": model, "modality": modality, "kind": kind, "region_i": iu[0] + 1,
                         "region_j": iu[1] + 1, "importance": values})


def _permuted_auc(name, dataset, X, graphs, y, train, test, fit, val, p, model_params, train_params) -> float:
    """Test AUC of ``name`` retrained on training labels permuted within the training fold."""
    rng = np.random.default_rng([train_params.seed, 7919, p])
    y_perm = y.copy()
    y_perm[train] = rng.permutation(y[train])
    if name in GRAPH_MODELS:
        inputs = model_inputs(name, graphs)
        model, params, _ = fit_graph_model(name, inputs, model_params, y_perm, fit, val, train_params,
                                           seed=train_params.seed + p + 1)
        score = predict_proba(model, inputs, test, params)[:, 1]
    else:
        score, _ = linear_scores(fit_linear(name, X, y_perm, train, train_params.seed), X[test])
    return roc_auc_score(y[test], score) if len(np.unique(y[test])) == 2 else np.nan


def select_hyperparameters(name: str, dataset: ConnectomeDataset, train: np.ndarray, graph_params: dict,
                           model_params: dict, train_params: TrainParams, search: dict, *, inner_folds: int,
                           val_fraction: float) -> dict:
    """Nested search inside one training fold: the combination of ``search`` values with the best
    mean AUC over an inner stratified k-fold of ``train`` (graphs refitted on each inner training part)."""
    y = dataset.y
    keys = sorted(search)
    best, best_auc = {}, -np.inf
    splitter = StratifiedKFold(inner_folds, shuffle=True, random_state=train_params.seed)
    for values in itertools.product(*(search[k] for k in keys)):
        candidate = dict(zip(keys, values))
        aucs = []
        for inner_train, inner_test in splitter.split(train, y[train]):
            inner_train, inner_test = train[inner_train], train[inner_test]
            fit, val = validation_split(y, inner_train, fraction=val_fraction, seed=train_params.seed)
            inputs = model_inputs(name, build_graphs(dataset, inner_train, **graph_params))
            model, params, _ = fit_graph_model(name, inputs, {**model_params, **candidate}, y, fit, val,
                                               train_params, seed=train_params.seed)
            aucs.append(roc_auc_score(y[inner_test], predict_proba(model, inputs, inner_test, params)[:, 1]))
        log.info("%s search %s: inner AUC %.3f", name, candidate, np.mean(aucs))
        if np.mean(aucs) > best_auc:
            best, best_auc = candidate, float(np.mean(aucs))
    return best


def write_fold_outputs(outputs: dict, *, predictions: str | Path, importance: str | Path, history: str | Path,
                       permutations: str | Path, info: str | Path) -> None:
    """Write one fold's tables (each atomically)."""
    write_tsv(outputs["predictions"], predictions)
    write_tsv(outputs["importance"], importance)
    write_tsv(outputs["history"], history)
    write_tsv(outputs["permutations"], permutations)
    write_json(outputs["info"], info)


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


def region_importance(mean: pd.DataFrame, regions: list[str]) -> pd.DataFrame:
    """Per model, modality and kind: each region's summed edge importance, from the edges' mean
    over splits (``model``, ``modality``, ``kind``, ``region_i``, ``region_j``, ``importance``)."""
    both = pd.concat([mean.rename(columns={"region_i": "region"}), mean.rename(columns={"region_j": "region"})])
    table = both.groupby(["model", "modality", "kind", "region"], as_index=False)["importance"].sum()
    table["region_name"] = [regions[r - 1] for r in table["region"]]
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
