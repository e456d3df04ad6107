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
from sklearn.metrics import (
    roc_auc_score,
)
from sklearn.model_selection import StratifiedKFold

from connex.errors import ConfigError, check_choice
from connex.evaluation.baselines import fit_linear, linear_features, linear_scores
from connex.evaluation.harmonise import harmonise_dataset
from connex.evaluation.importance import edge_table, saliency, write_importance
from connex.evaluation.metrics import classification_metrics
from connex.evaluation.splits import split_indices
from connex.inputs.io import write_json, write_tsv
from connex.model.dataset import ConnectomeDataset
from connex.model.graphs import WEIGHTING, GraphTransform, SubjectGraphs, concatenate_graphs
from connex.model.training import (
    TrainParams,
    TrainResult,
    predict_proba,
    save_checkpoint,
    seed_everything,
    train_model,
    validation_split,
)
from connex.registry import FUSED, GRAPH_MODELS, LINEAR_MODELS, MODEL_SPECS, MODELS, usable_models

log = logging.getLogger(__name__)



# ------------------------------------------------------------------------------------ models

def build_graphs(dataset: ConnectomeDataset, train: np.ndarray, *, sparsify: str = "topk", k: int = 8,
                 density: float = 0.1, clip: float | None = 3.0, weighting: dict[str, str] | None = None
                 ) -> dict[str, SubjectGraphs]:
    """Graphs of every subject for each modality, with transforms fitted on ``train`` only.

    ``weighting``: modality -> edge weighting (default :data:`connex.graphs.WEIGHTING`).
    """
    weighting = {**WEIGHTING, **(weighting or {})}
    graphs = {}
    for modality in dataset.modalities:
        transform = GraphTransform(weighting[modality], sparsify=sparsify, k=k, density=density, clip=clip)
        transform.fit(dataset.matrices(modality)[train])
        graphs[modality] = transform.transform(dataset.matrices(modality))
    return graphs


def model_inputs(name: str, graphs: dict[str, SubjectGraphs]) -> dict[str, SubjectGraphs]:
    """The graphs a graph model reads (its ``modalities`` in :data:`connex.registry.MODEL_SPECS`):
    one per modality, or for early fusion one graph of them fused."""
    spec = MODEL_SPECS[check_choice("model", name, GRAPH_MODELS)]
    if spec.architecture == "early_fusion":
        return {FUSED: concatenate_graphs(*(graphs[m] for m in spec.modalities))}
    return {m: graphs[m] for m in spec.modalities}


def make_graph_model(name: str, inputs: dict[str, SubjectGraphs], hyper: dict) -> torch.nn.Module:
    """A fresh ConneX (or single-modality ConneX, or early-fusion GNN) for ``inputs``."""
    from connex.model.architectures import build_model

    spec = MODEL_SPECS[check_choice("model", name, GRAPH_MODELS)]
    n = next(iter(inputs.values())).n_regions
    in_dims = {k: g.features.shape[2] for k, g in inputs.items()}
    if spec.architecture == "early_fusion":
        keys = ("backbone", "hidden", "layers", "dropout", "pooling")
        return build_model("early_fusion", n, in_dims, **{k: v for k, v in hyper.items() if k in keys})
    return build_model("connex", n, in_dims, **hyper)


# -------------------------------------------------------------------------------- one fold

def run_fold(dataset: ConnectomeDataset, splits: pd.DataFrame, split: str, *, models: list[str],
             graph_params: dict, model_params: dict, train_params: TrainParams, val_fraction: float = 0.2,
             search: dict | None = None, inner_folds: int = 3, permutations: int = 0,
             harmonise: dict | None = None, checkpoint_dir: str | Path | None = None, progress: bool = False
             ) -> dict[str, pd.DataFrame]:
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
    harmonise : dict, optional
        ``site`` and ``covariates`` of :func:`connex.evaluation.harmonise.harmonise_dataset`
        (fitted on the training fold, applied to all; default: nothing removed).
    checkpoint_dir : path, optional
        Where each graph model's state dict is saved (``split-<split>_model-<name>.pt``).

    Returns
    -------
    dict of DataFrame
        ``predictions`` (one row per test subject and model), ``importance`` (edge importance
        of the graph models and the logistic regression, long format), ``history`` (learning
        curves), ``permutations`` (test AUC per model and permutation; empty without), ``info``.
    """
    for name in models:
        check_choice("models", name, MODELS)
    usable, left_out = usable_models(models, dataset.modalities)
    if left_out:
        raise ConfigError(f"{left_out} need a modality this dataset lacks (it has {list(dataset.modalities)}); "
                          f"the models it can train are {usable}.")
    if search and permutations:
        raise ConfigError("A permutation test with a nested search would need the search rerun for every "
                          "permutation (otherwise the null is a different procedure); use one or the other.")
    train, test = split_indices(dataset, splits, split)
    y = dataset.y
    seed = train_params.seed
    harmonise = {"site": "none", "covariates": (), **(harmonise or {})}
    dataset, harmonised = harmonise_dataset(dataset, train, site=harmonise["site"],
                                            covariates=tuple(harmonise["covariates"]),
                                            weighting=graph_params.get("weighting"))
    graphs = build_graphs(dataset, train, **graph_params)
    # each kind of linear features once (the edge baselines share theirs; tangent space fitted on train)
    linear = [m for m in models if m in LINEAR_MODELS]
    by_kind = {}
    for name in linear:
        if MODEL_SPECS[name].features not in by_kind:
            by_kind[MODEL_SPECS[name].features] = linear_features(name, dataset, train, graph_params.get("weighting"))
    features = {name: by_kind[MODEL_SPECS[name].features] for name in linear}
    predictions, importance, history, info, permuted = [], [], [], {"split": split, **harmonised}, []
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
            model, params, results = fit_graph_model(name, inputs, hyper, y, train, train_params,
                                                     val_fraction=val_fraction, seed=seed, progress=progress,
                                                     description=f"{split} {name}")
            probability = predict_proba(model, inputs, test, params)[:, 1]
            score, predicted = probability, (probability >= 0.5).astype(int)
            history.extend(r.history.assign(model=name, member=i + 1) for i, r in enumerate(results))
            best_epochs = [r.best_epoch for r in results]
            info[f"{name}_best_epoch"] = best_epochs[0] if len(best_epochs) == 1 else best_epochs
            for modality, matrix in saliency(model, inputs, test, params).items():
                importance.append(edge_table(name, modality, "saliency", matrix[iu], iu))
            for modality, matrix in getattr(model, "edge_importance", lambda: {})().items():
                importance.append(edge_table(name, modality, "edge_mask", matrix[iu], iu))
            if checkpoint_dir is not None:
                save_checkpoint(model, Path(checkpoint_dir) / f"split-{split}_model-{name}.pt")
        else:
            X = features[name]
            estimator = fit_linear(name, X, y, train, seed)
            score, predicted = linear_scores(estimator, X[test])
            if name == "logistic_regression":
                coef = np.abs(estimator[-1].coef_.ravel()).reshape(len(dataset.modalities), len(iu[0]))
                for modality, values in zip(dataset.modalities, coef, strict=True):
                    importance.append(edge_table(name, modality, "coefficient", values, iu))
        info[f"{name}_seconds"] = round(time.perf_counter() - start, 2)
        predictions.append(pd.DataFrame({
            "split": split, "model": name, "participant_id": np.array(dataset.subjects)[test],
            "label": np.array(dataset.classes)[y[test]], "y_true": y[test], "score": score,
            "y_pred": predicted, "predicted": np.array(dataset.classes)[predicted]}))
        log.info("%s %s: test AUC %.3f (%.1f s)", split, name,
                 classification_metrics(y[test], predicted, score)["roc_auc"], info[f"{name}_seconds"])
        for p in range(permutations):
            permuted.append({"split": split, "model": name, "permutation": p + 1,
                             "roc_auc": _permuted_auc(name, dataset, features.get(name), graphs, y, train, test,
                                                      val_fraction, p, model_params, train_params)})
    # an ensemble over folds validates on every training subject once; a single model on its split
    ensembled = ensemble_size(train_params.ensemble, y[train]) > 1
    n_validation = len(train) if ensembled else len(validation_split(y, train, fraction=val_fraction, seed=seed)[1])
    info.update(n_regions=n, n_train=len(train), n_validation=n_validation, n_test=len(test))
    return {"predictions": pd.concat(predictions, ignore_index=True),
            "importance": pd.concat(importance, ignore_index=True) if importance else pd.DataFrame(),
            "history": pd.concat(history, ignore_index=True) if history else pd.DataFrame(),
            "permutations": pd.DataFrame(permuted, columns=["split", "model", "permutation", "roc_auc"]),
            "info": info}


def fit_graph_model(name: str, inputs: dict[str, SubjectGraphs], hyper: dict, y: np.ndarray, train: np.ndarray,
                    train_params: TrainParams, *, val_fraction: float, seed: int, **options
                    ) -> tuple[torch.nn.Module, TrainParams, list[TrainResult]]:
    """A graph model trained on the ``train`` subjects, early-stopped on validation subjects
    carved from them.

    With one member (:func:`ensemble_size` of ``train_params.ensemble``): one model (initialised
    from ``seed``), validated on a stratified ``val_fraction`` of ``train``. With ``k > 1``
    members: an ensemble over folds, member ``i`` (seed ``seed + i``) validated on fold ``i`` of a
    stratified k-fold of ``train`` and trained on the rest, so every training subject serves once
    for early stopping and all of them for fitting; the ensemble averages the members' logits
    (:class:`connex.model.architectures.Ensemble`).

    Returns the model, the training parameters it used (loss weights of its heads) and one
    training result per member. ``options`` go to :func:`connex.training.train_model`.
    """
    from connex.model.architectures import Ensemble

    params = _params_for(name, train_params)
    n_members = ensemble_size(train_params.ensemble, y[train])
    if n_members == 1:
        parts = [validation_split(y, train, fraction=val_fraction, seed=seed)]
    else:
        splitter = StratifiedKFold(n_members, shuffle=True, random_state=seed)
        parts = [(train[a], train[b]) for a, b in splitter.split(train, y[train])]
    members, results = [], []
    for i, (fit, val) in enumerate(parts):
        seed_everything(seed + i)
        model = make_graph_model(name, inputs, hyper)
        results.append(train_model(model, inputs, y, fit, val, replace(params, seed=params.seed + i), **options))
        members.append(model)
    return (members[0] if len(members) == 1 else Ensemble(members)), params, results


#: ``model.training.ensemble: auto``: members of an ensemble over folds on small training folds,
#: and the training-fold size from which a single model is trained instead.
AUTO_ENSEMBLE, AUTO_ENSEMBLE_BELOW = 5, 200


def ensemble_size(requested: int | str, y_train: np.ndarray) -> int:
    """Members an ensemble over folds can have.

    ``requested``: a count, or ``"auto"``: :data:`AUTO_ENSEMBLE` members when the training fold
    has fewer than :data:`AUTO_ENSEMBLE_BELOW` subjects (there the validation split that early
    stopping reads is 40 subjects or fewer, and which epoch it picks varies most), else 1. Capped
    at the training fold's smallest class (each member's validation fold needs one subject of
    every class); 1 when fewer than two folds are possible (a single model with a validation split).
    """
    if requested == "auto":
        requested = AUTO_ENSEMBLE if len(y_train) < AUTO_ENSEMBLE_BELOW else 1
    smallest = int(np.bincount(y_train).min()) if len(y_train) else 0
    members = min(int(requested), smallest)
    if members < requested:
        log.info("Ensemble of %d members instead of %d: the training fold's smallest class has %d subjects.",
                 max(members, 1), requested, smallest)
    return members if members >= 2 else 1


def _params_for(name: str, params: TrainParams) -> TrainParams:
    """Loss weights restricted to the heads the model has."""
    heads = MODEL_SPECS[name].heads
    return replace(params, loss_weights={h: params.loss_weights[h] for h in heads})


def _permuted_auc(name, dataset, X, graphs, y, train, test, val_fraction, p, model_params, train_params) -> float:
    """Test AUC of ``name`` retrained on training labels permuted within the training fold."""
    rng = np.random.default_rng([train_params.seed, 7919, p])
    y_perm = y.copy()
    y_perm[train] = rng.permutation(y[train])
    if name in GRAPH_MODELS:
        inputs = model_inputs(name, graphs)
        model, params, _ = fit_graph_model(name, inputs, model_params, y_perm, train, train_params,
                                           val_fraction=val_fraction, seed=train_params.seed + p + 1)
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
            inputs = model_inputs(name, build_graphs(dataset, inner_train, **graph_params))
            model, params, _ = fit_graph_model(name, inputs, {**model_params, **candidate}, y, inner_train,
                                               train_params, val_fraction=val_fraction, seed=train_params.seed)
            aucs.append(roc_auc_score(y[inner_test], predict_proba(model, inputs, inner_test, params)[:, 1]))
        log.info("%s search %s: inner AUC %.3f", name, candidate, np.mean(aucs))
        if np.mean(aucs) > best_auc:
            best, best_auc = candidate, float(np.mean(aucs))
    return best


def write_fold_outputs(outputs: dict, *, predictions: str | Path, importance: str | Path, history: str | Path,
                       permutations: str | Path, info: str | Path) -> None:
    """Write one fold's tables (each atomically; edge importance as ``.npz``:
    :func:`connex.evaluation.importance.write_importance`)."""
    write_tsv(outputs["predictions"], predictions)
    write_importance(outputs["importance"], importance, n_regions=outputs["info"]["n_regions"])
    write_tsv(outputs["history"], history)
    write_tsv(outputs["permutations"], permutations)
    write_json(outputs["info"], info)
