"""Site harmonisation (ComBat) and covariate regression, fitted on a training fold only.

Shape letters: ``s`` subjects, ``p`` features (edges), ``g`` sites, ``k`` covariate columns.

ComBat (Johnson, Li & Rabinovic 2007, Biostatistics 8:118; for connectomes Yu et al. 2018, Hum
Brain Mapp 39:4213) models each feature as ``x = alpha + C beta + gamma_site + delta_site eps``,
and removes the site's additive (``gamma``) and multiplicative (``delta``) effects, estimated
with empirical-Bayes shrinkage across features. Here every estimate comes from the training
subjects; the test subjects are adjusted with them (as ``neuroCombatFromTraining``), so nothing
of the test fold (not even its site means) enters. The diagnosis is never a covariate: it is
unknown for test subjects.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pandas as pd

from connex.errors import ConfigError, check_choice
from connex.model.dataset import ConnectomeDataset
from connex.model.graphs import WEIGHTING, edge_weights, matrices_from_edge_weights
from connex.registry import COVARIATES, SITE_HARMONISATION

log = logging.getLogger(__name__)

#: Training subjects a harmonisation fit needs beyond its design columns (sites + covariates).
MIN_RESIDUAL_DOF = 10


class ComBat:
    """Parametric empirical-Bayes ComBat with training-only estimates (scikit-learn style).

    Parameters
    ----------
    max_iter : int
        Iterations of the empirical-Bayes fixed point (per site).
    tol : float
        Convergence tolerance on the relative change of the estimates.

    Attributes
    ----------
    sites_ : ndarray (g,)
    grand_mean_ : ndarray (p,)
        Site-size weighted mean of the site intercepts.
    beta_ : ndarray (k, p)
        Covariate effects (kept in the output: ComBat only removes site effects).
    var_pooled_ : ndarray (p,)
    gamma_ : ndarray (g, p)
        Shrunk additive site effects (standardised units).
    delta_ : ndarray (g, p)
        Shrunk multiplicative site effects.
    adjusted_ : ndarray (p,) bool
        Features ComBat adjusts: those that vary within every training site (the others pass
        through unchanged).
    """

    def __init__(self, *, max_iter: int = 100, tol: float = 1e-4):
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, X: np.ndarray, site: np.ndarray, covariates: np.ndarray | None = None) -> ComBat:
        """Estimate the site effects from training features ``X (s, p)``, their ``site (s,)`` and
        optional ``covariates (s, k)``; every site needs at least two subjects."""
        X = np.asarray(X, dtype=np.float64)
        site = np.asarray(site).astype(str)
        self.sites_, counts = np.unique(site, return_counts=True)
        if len(self.sites_) < 2:
            raise ConfigError(f"ComBat needs at least two sites; the training subjects have {list(self.sites_)}.")
        if counts.min() < 2:
            raise ConfigError(f"ComBat needs two or more training subjects per site; site "
                              f"{str(self.sites_[counts.argmin()])!r} has {counts.min()}.")
        onehot = (site[:, None] == self.sites_[None, :]).astype(float)
        C = _covariates(covariates, len(X))
        design = np.hstack([onehot, C])
        B = np.linalg.lstsq(design, X, rcond=None)[0]
        g = len(self.sites_)
        self.grand_mean_ = counts / counts.sum() @ B[:g]
        self.beta_ = B[g:]
        residual = X - design @ B
        self.var_pooled_ = np.maximum((residual ** 2).mean(0), 1e-12)
        Z = self._standardise(X, C)
        within = np.stack([X[site == s].var(0, ddof=1) for s in self.sites_])
        # a feature constant within a site (an SC edge without streamlines there: log1p(0) in every
        # subject) has no scale to estimate; dividing by its ~0 variance would blow up any test
        # subject with a value there, so such features are left as they are
        self.adjusted_ = (within > 1e-8 * np.maximum(X.var(0), 1e-12)).all(0) & (X.var(0) > 1e-12)
        self.gamma_ = np.zeros((g, X.shape[1]))
        self.delta_ = np.ones((g, X.shape[1]))
        ok = self.adjusted_
        if ok.any():
            gamma_hat = np.stack([Z[site == s][:, ok].mean(0) for s in self.sites_])
            delta_hat = np.stack([Z[site == s][:, ok].var(0, ddof=1) for s in self.sites_])
            for i, s in enumerate(self.sites_):
                self.gamma_[i, ok], self.delta_[i, ok] = self._shrink(Z[site == s][:, ok], gamma_hat[i], delta_hat[i])
        return self

    def transform(self, X: np.ndarray, site: np.ndarray, covariates: np.ndarray | None = None) -> np.ndarray:
        """Features ``X (s, p)`` with the fitted site effects removed; a site unseen in training
        is an error (its effects were never estimated)."""
        if not hasattr(self, "sites_"):
            raise RuntimeError("ComBat.transform called before fit.")
        site = np.asarray(site).astype(str)
        unseen = sorted(set(site.tolist()) - set(self.sites_.tolist()))
        if unseen:
            raise ConfigError(f"ComBat was fitted on sites {self.sites_.tolist()} and cannot adjust subjects of "
                              f"{unseen}; with leave-site-out splits set model.harmonise.site: none.")
        X = np.asarray(X, dtype=np.float64)
        C = _covariates(covariates, len(X))
        index = np.searchsorted(self.sites_, site)
        Z = (self._standardise(X, C) - self.gamma_[index]) / np.sqrt(self.delta_[index])
        out = Z * np.sqrt(self.var_pooled_) + self.grand_mean_ + C @ self.beta_
        return np.where(self.adjusted_, out, X)

    def _standardise(self, X: np.ndarray, C: np.ndarray) -> np.ndarray:
        return (X - self.grand_mean_ - C @ self.beta_) / np.sqrt(self.var_pooled_)

    def _shrink(self, Z: np.ndarray, gamma_hat: np.ndarray, delta_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Empirical-Bayes estimates of one site: normal prior on ``gamma``, inverse-gamma prior on
        ``delta``, both fitted across features by the method of moments (Johnson et al. 2007)."""
        n = len(Z)
        gamma_bar, tau2 = gamma_hat.mean(), max(gamma_hat.var(ddof=1), 1e-12)
        m, v = delta_hat.mean(), max(delta_hat.var(ddof=1), 1e-12)
        a, b = (2 * v + m ** 2) / v, (m * v + m ** 3) / v
        gamma, delta = gamma_hat, delta_hat
        for _ in range(self.max_iter):
            gamma_new = (n * tau2 * gamma_hat + delta * gamma_bar) / (n * tau2 + delta)
            delta_new = (b + 0.5 * ((Z - gamma_new) ** 2).sum(0)) / (n / 2 + a - 1)
            change = max(np.max(np.abs(gamma_new - gamma) / (np.abs(gamma) + 1e-12)),
                         np.max(np.abs(delta_new - delta) / delta))
            gamma, delta = gamma_new, delta_new
            if change < self.tol:
                break
        return gamma, delta


class CovariateRegression:
    """Remove linear effects of covariates (age, sex...) from each feature, with the slopes fitted
    on training subjects (Snoek et al. 2019, NeuroImage 184:741: confound regression fitted within
    the cross-validation). The training mean is kept.

    Attributes
    ----------
    mean_ : ndarray (k,)
        Training mean of each covariate column.
    beta_ : ndarray (k, p)
    """

    def fit(self, X: np.ndarray, covariates: np.ndarray) -> CovariateRegression:
        C = _covariates(covariates, len(X))
        self.mean_ = C.mean(0)
        design = np.hstack([np.ones((len(X), 1)), C - self.mean_])
        self.beta_ = np.linalg.lstsq(design, np.asarray(X, dtype=np.float64), rcond=None)[0][1:]
        return self

    def transform(self, X: np.ndarray, covariates: np.ndarray) -> np.ndarray:
        if not hasattr(self, "beta_"):
            raise RuntimeError("CovariateRegression.transform called before fit.")
        return np.asarray(X, dtype=np.float64) - (_covariates(covariates, len(X)) - self.mean_) @ self.beta_


def _covariates(covariates: np.ndarray | None, n: int) -> np.ndarray:
    return np.zeros((n, 0)) if covariates is None else np.asarray(covariates, dtype=np.float64).reshape(n, -1)


def covariate_matrix(participants: pd.DataFrame, names: list[str], train: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Numeric covariate columns ``(s, k)`` of ``participants`` for the covariates ``names`` that it
    has; a covariate that every training subject lacks is skipped (returned names say which were
    used). ``age`` is numeric; ``sex`` becomes one indicator column (its first training level is the
    reference). A missing value is set to the training mean (logged)."""
    columns, used = [], []
    for name in names:
        check_choice("covariate", name, COVARIATES)
        if name not in participants:
            continue
        values = participants[name].mask(participants[name].astype(str).isin(["n/a", "nan", ""]))
        if name == "sex":
            levels = sorted(values.iloc[train].dropna().astype(str).str.upper().unique())
            if len(levels) < 2:
                continue
            column = (values.astype(str).str.upper() == levels[1]).astype(float).where(values.notna())
        else:
            column = pd.to_numeric(values, errors="coerce")
        if column.iloc[train].isna().all() or column.iloc[train].nunique() < 2:
            continue
        if column.isna().any():
            log.warning("%s: %d subject(s) have no value; set to the training mean.", name, column.isna().sum())
            column = column.fillna(column.iloc[train].mean())
        columns.append(column.to_numpy(float))
        used.append(name)
    return (np.stack(columns, axis=1) if columns else np.zeros((len(participants), 0))), used


def harmonise_dataset(dataset: ConnectomeDataset, train: np.ndarray, *, site: str = "auto",
                      covariates: tuple[str, ...] = (), weighting: dict[str, str] | None = None
                      ) -> tuple[ConnectomeDataset, dict]:
    """The dataset with site effects (ComBat) and covariate effects removed from every edge, both
    fitted on the ``train`` subjects only and applied to all.

    Each modality is adjusted on its edge weights (Fisher z for correlations, log1p for counts:
    the scale in which ComBat's Gaussian model holds) and mapped back to the raw scale (SC counts
    that come out below zero are set to zero).

    Parameters
    ----------
    site : {"auto", "combat", "none"}
        ``auto``: ComBat when the training subjects come from more than one site. Both ComBat and
        the covariates are skipped (``auto``; ``combat`` raises) when the training fold has fewer
        than :data:`MIN_RESIDUAL_DOF` subjects beyond the columns they fit.
    covariates : tuple of str
        Names of :data:`connex.registry.COVARIATES` to regress out (and to protect in ComBat).

    Returns
    -------
    dataset : ConnectomeDataset
        A new dataset (the input is unchanged); the same object when nothing applies.
    info : dict
        ``harmonised_sites`` (list) and ``regressed_covariates`` (list).
    """
    check_choice("site", site, SITE_HARMONISATION)
    sites = dataset.participants["site"].fillna("n/a").astype(str).to_numpy()
    names, counts = np.unique(sites[train], return_counts=True)
    if site == "combat" and len(names) < 2:
        raise ConfigError(f"model.harmonise.site is 'combat' but the training subjects come from one site "
                          f"({str(names[0])!r}); use 'auto' or 'none'.")
    use_combat = site == "combat"
    if site == "auto" and len(names) > 1:
        # auto: only where every subject's site is estimable (not under leave-site-out, not a site
        # with a single training subject)
        unseen = sorted(set(sites.tolist()) - set(names.tolist()))
        small = names[counts < 2].tolist()
        use_combat = not unseen and not small
        if not use_combat:
            log.info("ComBat not used in this split (model.harmonise.site: auto): %s.",
                     f"sites {unseen} have no training subjects" if unseen else
                     f"sites {small} have one training subject")
    C, used = covariate_matrix(dataset.participants, list(covariates), train)
    # both are least-squares fits of every edge: with fewer than MIN_RESIDUAL_DOF training subjects
    # beyond the design's columns they fit the training fold exactly and extrapolate wildly to the
    # test fold (a 4-subject training fold with 2 sites, age and sex has no residual at all)
    columns = (len(names) if use_combat else 0) + C.shape[1]
    if columns and len(train) - columns < MIN_RESIDUAL_DOF:
        if site == "combat":
            raise ConfigError(f"model.harmonise: ComBat over {len(names)} sites with covariates {used} needs at "
                              f"least {columns + MIN_RESIDUAL_DOF} training subjects; this split has {len(train)}.")
        log.info("Harmonisation not used in this split: %d training subjects for %d fitted columns (sites %s, "
                 "covariates %s) leave under %d residual degrees of freedom.", len(train), columns,
                 names.tolist() if use_combat else [], used, MIN_RESIDUAL_DOF)
        use_combat, C, used = False, C[:, :0], []
    info = {"harmonised_sites": names.tolist() if use_combat else [],
            "regressed_covariates": used}
    if not use_combat and not used:
        return dataset, info
    weighting = {**WEIGHTING, **(weighting or {})}
    n = len(dataset.regions)
    iu = np.triu_indices(n, 1)

    def adjust(X: np.ndarray) -> np.ndarray:  # (s, e) features, fitted on the training rows
        if use_combat:
            X = ComBat().fit(X[train], sites[train], C[train]).transform(X, sites, C)
        if used:
            X = CovariateRegression().fit(X[train], C[train]).transform(X, C)
        return X

    adjusted = {}
    for modality in dataset.modalities:
        raw = dataset.matrices(modality)
        X = adjust(edge_weights(raw, weighting[modality])[:, iu[0], iu[1]])
        adjusted[modality] = matrices_from_edge_weights(X, raw, weighting[modality])
    if dataset.fc_covariance is not None:  # the tangent baseline's input, adjusted as the FC edges are
        X = adjust(dataset.fc_covariance[:, iu[0], iu[1]])
        adjusted["fc_covariance"] = matrices_from_edge_weights(X, dataset.fc_covariance, "none")
    log.info("Harmonised on %d training subjects: ComBat over sites %s; covariates regressed: %s.",
             len(train), info["harmonised_sites"] or "none", used or "none")
    return replace(dataset, **adjusted), info

