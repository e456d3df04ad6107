"""Linear baselines on connectome edges (fitted on the training fold only).

Shape letters: ``s`` subjects, ``e`` edges."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from connex.errors import check_choice
from connex.evaluation.tangent import TangentSpace, correlation_from_fisher_z
from connex.model.dataset import ConnectomeDataset
from connex.model.graphs import WEIGHTING, edge_weights
from connex.registry import LINEAR_MODELS, MODEL_SPECS


def edge_vectors(dataset: ConnectomeDataset, weighting: dict[str, str] | None = None) -> np.ndarray:
    """Vectorised upper triangles of the dataset's SC and FC edge weights (default log1p SC,
    Fisher-z FC), side by side in :data:`connex.registry.MODALITIES` order, ``(s, m n (n - 1) / 2)``
    for ``m`` modalities: the features of the linear baselines."""
    weighting = {**WEIGHTING, **(weighting or {})}
    n = len(dataset.regions)
    iu = np.triu_indices(n, 1)
    parts = [edge_weights(dataset.matrices(m), weighting[m])[:, iu[0], iu[1]] for m in dataset.modalities]
    return np.concatenate(parts, axis=1)


def tangent_vectors(dataset: ConnectomeDataset, train: np.ndarray, weighting: dict[str, str] | None = None
                    ) -> np.ndarray:
    """Tangent-space embedding of every subject's FC, ``(s, n (n + 1) / 2)``, with the reference
    (geometric mean) fitted on the ``train`` subjects only.

    The FC is the dataset's Ledoit-Wolf covariances of the region time series where it has them
    (``dataset.fc_covariance``, Dadi et al. 2019's best pipeline), else its FC matrices:
    correlations (edge weighting ``fisher_z``) are read as r, with the diagonal set to 1 (tools
    such as XCP-D and the UMCD write 0 there); FC matrices that already hold Fisher z values (edge
    weighting ``none`` and a zero diagonal) are turned back into r first; covariances are used as
    they are."""
    if dataset.fc_covariance is not None:
        return TangentSpace().fit(dataset.fc_covariance[train]).transform(dataset.fc_covariance)
    weighting = {**WEIGHTING, **(weighting or {})}
    fc = dataset.matrices("fc")
    if weighting["fc"] == "fisher_z":
        fc = fc.copy()
        fc[:, np.arange(fc.shape[1]), np.arange(fc.shape[1])] = 1.0
    elif weighting["fc"] == "none" and np.allclose(np.diagonal(fc, axis1=1, axis2=2), 0):
        fc = correlation_from_fisher_z(fc)
    return TangentSpace().fit(fc[train]).transform(fc)


def linear_features(name: str, dataset: ConnectomeDataset, train: np.ndarray,
                    weighting: dict[str, str] | None = None) -> np.ndarray:
    """The features a linear baseline reads (its ``features`` in :data:`connex.registry.MODEL_SPECS`)."""
    spec = MODEL_SPECS[check_choice("model", name, LINEAR_MODELS)]
    if spec.features == "tangent":
        return tangent_vectors(dataset, train, weighting)
    return edge_vectors(dataset, weighting)


#: C of the linear models' inner search: the range of the dev cohorts' reference baseline
#: (README there), wide enough that the search, not the grid, sets the regularisation.
C_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
#: C where a class has too few training subjects for an inner search.
FALLBACK_C = 1e-2


def fit_linear(name: str, X: np.ndarray, y: np.ndarray, train: np.ndarray, seed: int):
    """Logistic regression or linear SVM (balanced class weights) with scaling and C chosen
    from :data:`C_GRID` by 3-fold CV (ROC AUC) inside ``train``.

    Parameters
    ----------
    name : str
        A linear model of :data:`connex.registry.LINEAR_MODELS` (its ``estimator`` is used).
    X : ndarray (s, f)
        Features of every subject; only the ``train`` rows are read.
    y : ndarray (s,)
        Labels 0/1.
    train : ndarray of int
        Training subjects.
    """
    check_choice("model", name, LINEAR_MODELS)
    if MODEL_SPECS[name].estimator == "logistic_regression":
        estimator = LogisticRegression(max_iter=5000, class_weight="balanced", random_state=seed)
    else:  # linear_svm
        estimator = LinearSVC(max_iter=20000, dual="auto", class_weight="balanced", random_state=seed)
    pipeline = make_pipeline(StandardScaler(), estimator)
    inner = min(3, int(np.bincount(y[train]).min()))
    key = f"{type(estimator).__name__.lower()}__C"
    if inner >= 2:
        search = GridSearchCV(pipeline, {key: list(C_GRID)}, scoring="roc_auc",
                              cv=StratifiedKFold(inner, shuffle=True, random_state=seed))
        search.fit(X[train], y[train])
        return search.best_estimator_
    return pipeline.set_params(**{key: FALLBACK_C}).fit(X[train], y[train])


def linear_scores(model, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(score for class 1, predicted class) of a fitted linear pipeline."""
    score = model.predict_proba(X)[:, 1] if hasattr(model, "predict_proba") else model.decision_function(X)
    return score, model.predict(X)
