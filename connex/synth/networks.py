"""True structural and functional networks of a synthetic cohort, with a known group effect.

Shapes: ``n`` regions, ``t`` time points.

The structural network is a set of bundles (region pairs) with strengths: homotopic pairs
always, other pairs with a probability that falls with distance. The functional network is
the correlation matrix of a latent model: bilateral networks (shared factors), a
structure-function coupling term (a diffusion kernel of the SC graph, positive definite) and
subject-specific noise factors.

The group effect is complementary by construction: patients (SZ) have weaker bundles on
one set of SC edges and lose a shared factor on a *different*, node-disjoint set of FC
edges, so each modality carries its own part of the diagnosis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.linalg import expm

from connex.synth.atlas import Parcellation

#: Band (Hz) of the synthetic neural fluctuations (resting-state BOLD: about 0.01-0.08 Hz).
NEURAL_BAND_HZ = (0.01, 0.08)


@dataclass(frozen=True)
class GroupNetworks:
    """Cohort-level ground truth shared by all subjects.

    Attributes
    ----------
    sc_edges : ndarray (e, 2) of int
        Region index pairs (0-based, i < j) joined by a bundle.
    sc_strength : ndarray (e,)
        Group-mean bundle strength (arbitrary units, median about 1).
    fc_covariance : ndarray (n, n)
        Group-mean latent covariance of healthy controls (positive definite).
    sc_effect : ndarray (e,) of bool
        Which bundles are weaker in SZ.
    fc_effect_pairs : ndarray (k, 2) of int
        Region pairs whose shared factor SZ lacks.
    effect_table : DataFrame
        ``modality``, ``region_i``, ``region_j`` (1-based atlas indices), ``effect``.
    sc_effect_size, fc_effect_size : float
        Fractional bundle weakening in SZ; variance of the shared factor SZ lacks.
    """

    sc_edges: np.ndarray
    sc_strength: np.ndarray
    fc_covariance: np.ndarray
    sc_effect: np.ndarray
    fc_effect_pairs: np.ndarray
    effect_table: pd.DataFrame
    sc_effect_size: float
    fc_effect_size: float


def make_group_networks(parcellation: Parcellation, rng: np.random.Generator, *,
                        edge_density: float = 0.1, distance_scale_mm: float = 45.0,
                        n_sc_effect: int = 8, sc_effect: float = 0.5,
                        n_fc_effect: int = 8, fc_effect: float = 0.6,
                        coupling: float = 0.3) -> GroupNetworks:
    """Draw the cohort's true networks and group effect.

    Parameters
    ----------
    parcellation : Parcellation
    rng : numpy Generator
    edge_density : float
        Fraction of region pairs joined by a bundle (homotopic pairs included).
    distance_scale_mm : float
        Length scale of the fall-off of bundle probability with distance.
    n_sc_effect, sc_effect : int, float
        Number of bundles weaker in SZ, and by which fraction (0.5: half as strong).
    n_fc_effect, fc_effect : int, float
        Number of node-disjoint region pairs whose shared factor SZ lacks (at most n/2),
        and that factor's variance (relative to a region's unit variance).
    coupling : float
        Weight of the structure-function coupling term in the FC covariance.
    """
    n = parcellation.n_regions
    half = n // 2
    centroids = parcellation.centroids
    distance = np.linalg.norm(centroids[:, None] - centroids[None], axis=-1)
    iu, ju = np.triu_indices(n, 1)
    homotopic = (ju - iu) == half
    n_edges = max(int(round(edge_density * len(iu))), half + 1)
    # Sample the non-homotopic bundles without replacement, favouring short ones.
    weight = np.exp(-distance[iu, ju] / distance_scale_mm)
    weight[homotopic] = 0.0
    cross_hemisphere = (iu < half) != (ju < half)
    weight[cross_hemisphere] *= 0.15  # few non-homotopic callosal bundles
    chosen = rng.choice(len(iu), size=n_edges - half, replace=False, p=weight / weight.sum())
    is_edge = homotopic.copy()
    is_edge[chosen] = True
    sc_edges = np.column_stack([iu[is_edge], ju[is_edge]])
    sc_strength = rng.lognormal(0.0, 0.4, size=len(sc_edges))
    sc_strength[(sc_edges[:, 1] - sc_edges[:, 0]) == half] *= 1.5

    # SC effect: among the stronger half of the bundles, so it is measurable.
    strong = np.flatnonzero(sc_strength >= np.median(sc_strength))
    sc_effect_idx = rng.choice(strong, size=min(n_sc_effect, len(strong)), replace=False)
    sc_effect_mask = np.zeros(len(sc_edges), dtype=bool)
    sc_effect_mask[sc_effect_idx] = True

    # FC: bilateral networks as shared factors, plus SC coupling through a diffusion kernel.
    networks = parcellation.table["network"].to_numpy()
    loadings = np.zeros((n, len(np.unique(networks))))
    for k, name in enumerate(np.unique(networks)):
        loadings[networks == name, k] = rng.uniform(0.5, 0.9, size=(networks == name).sum())
    loadings += rng.normal(0.0, 0.08, size=loadings.shape)
    adjacency = np.zeros((n, n))
    adjacency[sc_edges[:, 0], sc_edges[:, 1]] = sc_strength
    adjacency += adjacency.T
    degree = adjacency.sum(1)
    laplacian = np.diag(degree) - adjacency
    kernel = expm(-laplacian / (degree.max() + 1e-9))
    kernel /= np.sqrt(np.outer(np.diag(kernel), np.diag(kernel)))
    covariance = loadings @ loadings.T + coupling * kernel + np.diag(rng.uniform(0.4, 0.7, n))

    # FC effect pairs: node-disjoint among themselves (so each effect stays on its own edge),
    # and never an SC effect edge (the two modalities carry different parts of the effect).
    sc_effect_pairs = {tuple(p) for p in sc_edges[sc_effect_mask].tolist()}
    order = rng.permutation(n)
    fc_pairs: list[list[int]] = []
    used: set[int] = set()
    for i in order:
        if len(fc_pairs) == n_fc_effect:
            break
        for j in order:
            pair = tuple(sorted((int(i), int(j))))
            if i != j and not {i, j} & used and pair not in sc_effect_pairs:
                fc_pairs.append(list(pair))
                used.update((int(i), int(j)))
                break
    if len(fc_pairs) < n_fc_effect:
        raise ValueError(f"Cannot place {n_fc_effect} node-disjoint FC effect edges among {n} regions.")
    fc_pairs = np.array(fc_pairs, dtype=int).reshape(-1, 2)
    for i, j in fc_pairs:  # controls have the extra shared factor; patients lack it
        covariance[np.ix_([i, j], [i, j])] += fc_effect

    effect_table = pd.concat([
        pd.DataFrame({"modality": "SC", "region_i": sc_edges[sc_effect_mask, 0] + 1,
                      "region_j": sc_edges[sc_effect_mask, 1] + 1,
                      "effect": f"SZ bundle strength x{1 - sc_effect:g}"}),
        pd.DataFrame({"modality": "FC", "region_i": fc_pairs[:, 0] + 1, "region_j": fc_pairs[:, 1] + 1,
                      "effect": f"SZ lacks a shared factor of variance {fc_effect:g} (lower FC)"}),
    ], ignore_index=True)
    return GroupNetworks(sc_edges=sc_edges, sc_strength=sc_strength, fc_covariance=covariance,
                         sc_effect=sc_effect_mask, fc_effect_pairs=fc_pairs,
                         effect_table=effect_table, sc_effect_size=sc_effect,
                         fc_effect_size=fc_effect)


@dataclass(frozen=True)
class SubjectNetworks:
    """One subject's true networks.

    Attributes
    ----------
    sc : ndarray (n, n)
        Symmetric bundle-strength matrix, zero diagonal, zero where no bundle.
    fc : ndarray (n, n)
        True FC: the correlation matrix of ``timeseries`` (exactly).
    timeseries : ndarray (t, n)
        Neural (haemodynamic) region time courses, zero mean, unit variance.
    """

    sc: np.ndarray
    fc: np.ndarray
    timeseries: np.ndarray


def make_subject_networks(group: GroupNetworks, is_patient: bool, rng: np.random.Generator, *,
                          n_volumes: int, repetition_time: float, sc_variability: float = 0.15,
                          fc_variability: float = 0.15) -> SubjectNetworks:
    """Draw one subject's true SC, FC and region time courses.

    Parameters
    ----------
    group : GroupNetworks
    is_patient : bool
        Apply the SZ effect.
    rng : numpy Generator
    n_volumes : int
        Number of time points ``t``.
    repetition_time : float
        Seconds between time points (shapes the haemodynamic smoothing).
    sc_variability, fc_variability : float
        Log-normal spread of bundle strengths, and scale of subject-specific FC factors.
    """
    n = group.fc_covariance.shape[0]
    strength = group.sc_strength * rng.lognormal(0.0, sc_variability, size=len(group.sc_strength))
    if is_patient:
        strength = np.where(group.sc_effect, strength * (1.0 - group.sc_effect_size), strength)
    sc = np.zeros((n, n))
    sc[group.sc_edges[:, 0], group.sc_edges[:, 1]] = strength
    sc += sc.T

    covariance = group.fc_covariance.copy()
    if is_patient:
        for i, j in group.fc_effect_pairs:
            covariance[np.ix_([i, j], [i, j])] -= group.fc_effect_size
    subject_factors = rng.normal(0.0, fc_variability, size=(n, 3))
    covariance += subject_factors @ subject_factors.T
    std = np.sqrt(np.diag(covariance))
    fc = covariance / np.outer(std, std)
    timeseries = correlated_timeseries(fc, n_volumes, repetition_time, rng)
    return SubjectNetworks(sc=sc, fc=fc, timeseries=timeseries)


def correlated_timeseries(correlation: np.ndarray, n_volumes: int, repetition_time: float,
                          rng: np.random.Generator) -> np.ndarray:
    """Slow time courses ``(t, n)`` whose sample correlation equals ``correlation`` exactly.

    White noise is shaped to the resting-state band (gain of a smooth 8th-order band-pass
    between :data:`NEURAL_BAND_HZ`, where spontaneous BOLD fluctuations lie), whitened to
    identity sample covariance, then coloured with the Cholesky factor of ``correlation``.
    Mixing across regions keeps every column inside the band, so the usual 0.01-0.08 Hz
    band-pass of a pipeline leaves the correlation nearly intact: the ground truth is the
    connectivity of the band a resting-state analysis keeps.
    """
    n = correlation.shape[0]
    if n_volumes <= n:
        raise ValueError(f"Need more time points than regions for an exact correlation; "
                         f"{n_volumes} volumes for {n} regions.")
    # The FFT filter is circular: filter a longer series and keep a window away from the wrap.
    margin = 50
    noise = rng.standard_normal((n_volumes + margin, n))
    frequency = np.fft.rfftfreq(n_volumes + margin, repetition_time)
    low, high = NEURAL_BAND_HZ
    gain = 1.0 / (1.0 + (low / np.maximum(frequency, 1e-12)) ** 8) / (1.0 + (frequency / high) ** 8)
    smooth = np.fft.irfft(np.fft.rfft(noise, axis=0) * gain[:, None], n=n_volumes + margin, axis=0)
    smooth = smooth[margin // 2: margin // 2 + n_volumes]
    smooth -= smooth.mean(0)
    sample_cov = smooth.T @ smooth / (n_volumes - 1)
    white = smooth @ np.linalg.inv(np.linalg.cholesky(sample_cov)).T
    coloured = white @ np.linalg.cholesky(correlation).T
    return coloured
