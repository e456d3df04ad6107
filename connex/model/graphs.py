"""Connectome matrices to graphs: edge weights, node features, sparsification, batching.

Shape letters: ``s`` subjects, ``n`` regions, ``b`` graphs in a batch, ``e`` edges.

Everything learned from data (the feature scaler, a proportional threshold, the edge-weight
scale) lives in :class:`GraphTransform`, which is fitted on a training fold and then applied
unchanged to its validation and test subjects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from connex.errors import ConfigError, check_choice
from connex.registry import EDGE_WEIGHTINGS, SPARSIFY

#: How a modality's raw matrix becomes edge weights: SC counts are log-scaled (``log1p``),
#: FC correlations are Fisher z-transformed (``arctanh``). The workflow's choice for a run (FC
#: measure, z values already written) is :func:`connex.model.weighting.modality_weighting`.
WEIGHTING = {"sc": "log1p", "fc": "fisher_z"}

_FISHER_CLIP = 1.0 - 1e-6


def edge_weights(matrices: np.ndarray, weighting: str) -> np.ndarray:
    """Transform raw matrices ``(s, n, n)`` to signed edge weights ``(s, n, n)``, zero diagonal.

    ``log1p`` for non-negative SC weights (counts: a few huge bundles otherwise dominate);
    ``fisher_z`` for correlations (clipped to |r| < 1 - 1e-6); ``none`` keeps the values.
    """
    check_choice("weighting", weighting, EDGE_WEIGHTINGS)
    matrices = np.asarray(matrices, dtype=np.float64)
    if weighting == "log1p":
        if (matrices < 0).any():
            raise ValueError("log1p edge weighting needs non-negative matrices (SC counts or densities).")
        weights = np.log1p(matrices)
    elif weighting == "fisher_z":
        weights = np.arctanh(np.clip(matrices, -_FISHER_CLIP, _FISHER_CLIP))
    else:  # none
        weights = matrices.copy()
    n = weights.shape[-1]
    weights[..., np.arange(n), np.arange(n)] = 0.0
    return weights


def matrices_from_edge_weights(edges: np.ndarray, like: np.ndarray, weighting: str) -> np.ndarray:
    """The inverse of :func:`edge_weights` on upper triangles: edge weights ``(s, e)`` back to raw
    symmetric matrices with the shape, dtype and diagonal of ``like`` ``(s, n, n)`` (``log1p``
    values below zero, which adjusted counts can reach, become a count of 0)."""
    check_choice("weighting", weighting, EDGE_WEIGHTINGS)
    if weighting == "fisher_z":
        values = np.tanh(edges)
    elif weighting == "log1p":
        values = np.expm1(np.maximum(edges, 0.0))
    else:  # none
        values = edges
    rows, cols = np.triu_indices(like.shape[-1], 1)
    out = like.astype(np.float64, copy=True)
    out[:, rows, cols] = values
    out[:, cols, rows] = values
    return out.astype(like.dtype, copy=False)


@dataclass
class SubjectGraphs:
    """Graphs of several subjects over the same ``n`` regions.

    Attributes
    ----------
    features : ndarray (s, n, f) float32
        Node features: each region's scaled connectivity profile (``f == n``).
    edge_index : list of ndarray (2, e_s) int64
        Directed edges of each subject (both directions of every kept connection).
    edge_weight : list of ndarray (e_s,) float32
        Positive edge weights (connection strength scaled by the training fold's mean).
    """

    features: np.ndarray
    edge_index: list[np.ndarray]
    edge_weight: list[np.ndarray]

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def n_regions(self) -> int:
        return self.features.shape[1]


class GraphTransform:
    """Turn one modality's connectomes into graphs, with every data-driven choice fitted on
    training subjects only (nilearn-style: arguments in ``__init__``, fitted attributes end in
    ``_``).

    Parameters
    ----------
    weighting : {"log1p", "fisher_z", "none"}
        See :func:`edge_weights`.
    sparsify : {"topk", "proportional"}
        ``topk`` keeps each region's k strongest connections (per subject, nothing fitted);
        ``proportional`` keeps the connections stronger than the training fold's threshold that
        leaves ``density`` of all region pairs on average (:data:`connex.registry.SPARSIFY`).
    k : int
        Connections kept per region for ``topk`` (the union over both ends is kept, so the
        graph stays undirected).
    density : float
        Fraction of region pairs kept on average for ``proportional``.
    clip : float or None
        Node features (z-scores) are clipped to ``[-clip, clip]``: a sparse SC element that is
        almost always zero in training gives z-scores of 10-20 where a subject has a few
        streamlines, and the GNN fits those outliers.

    Attributes
    ----------
    mean_, scale_ : ndarray (n, n)
        Per-element mean and standard deviation of the training subjects' edge weights (the
        node-feature scaler; elements without variance get scale 1).
    k_ : int
        ``k`` capped at ``n - 1``.
    threshold_ : float
        Strength threshold of ``proportional`` (``nan`` for ``topk``).
    weight_scale_ : float
        Mean strength of the kept training edges; edge weights are divided by it.
    """

    def __init__(self, weighting: str, *, sparsify: str = "topk", k: int = 8, density: float = 0.1,
                 clip: float | None = 3.0):
        self.weighting = weighting
        self.sparsify = sparsify
        self.k = k
        self.density = density
        self.clip = clip

    def fit(self, matrices: np.ndarray) -> GraphTransform:
        """Learn the scaler and thresholds from training matrices ``(s, n, n)``."""
        check_choice("sparsify", self.sparsify, SPARSIFY)
        weights = edge_weights(matrices, self.weighting)
        n = weights.shape[-1]
        if self.k < 1:
            raise ConfigError(f"k must be at least 1; {self.k} was provided.")
        # k >= n - 1 keeps every connection (a full graph), as small atlases need
        self.k_ = min(self.k, n - 1)
        if not 0 < self.density <= 1:
            raise ConfigError(f"density must be in (0, 1]; {self.density} was provided.")
        self.mean_ = weights.mean(0)
        scale = weights.std(0)
        self.scale_ = np.where(scale > 1e-12, scale, 1.0)
        strength = np.abs(weights)
        if self.sparsify == "proportional":
            iu = np.triu_indices(n, 1)
            self.threshold_ = float(np.quantile(strength[:, iu[0], iu[1]], 1.0 - self.density))
        else:
            self.threshold_ = float("nan")
        kept = [strength[s][self._keep(strength[s])] for s in range(len(strength))]
        mean_kept = float(np.mean(np.concatenate(kept))) if kept else 0.0
        self.weight_scale_ = mean_kept if mean_kept > 0 else 1.0
        return self

    def transform(self, matrices: np.ndarray) -> SubjectGraphs:
        """Graphs of matrices ``(s, n, n)`` with the fitted scaler and thresholds."""
        if not hasattr(self, "mean_"):
            raise RuntimeError("GraphTransform.transform called before fit.")
        weights = edge_weights(matrices, self.weighting)
        if weights.shape[1:] != self.mean_.shape:
            raise ValueError(f"Fitted on {self.mean_.shape[0]} regions; got matrices of shape {weights.shape[1:]}.")
        features = (weights - self.mean_) / self.scale_
        if self.clip is not None:
            features = np.clip(features, -self.clip, self.clip)
        features = features.astype(np.float32)
        strength = np.abs(weights)
        edge_index, edge_weight = [], []
        for s in range(len(weights)):
            keep = self._keep(strength[s])
            src, dst = np.nonzero(keep)
            edge_index.append(np.stack([src, dst]).astype(np.int64))
            edge_weight.append((strength[s][src, dst] / self.weight_scale_).astype(np.float32))
        return SubjectGraphs(features=features, edge_index=edge_index, edge_weight=edge_weight)

    def _keep(self, strength: np.ndarray) -> np.ndarray:
        """Boolean ``(n, n)`` symmetric mask of kept connections (no self-loops, no zeros)."""
        n = strength.shape[0]
        if self.sparsify == "topk":
            order = np.argsort(-strength, axis=1, kind="stable")[:, : self.k_]
            keep = np.zeros((n, n), dtype=bool)
            keep[np.repeat(np.arange(n), self.k_), order.ravel()] = True
            keep |= keep.T
        else:
            keep = strength > self.threshold_
        keep &= strength > 0
        np.fill_diagonal(keep, False)
        return keep


@dataclass
class GraphBatch:
    """A batch of ``b`` graphs over the same ``n`` regions, stacked for PyTorch Geometric.

    Attributes
    ----------
    x : Tensor (b * n, f)
        Node features; graph ``g`` owns rows ``g * n`` to ``(g + 1) * n - 1``.
    edge_index : Tensor (2, e) int64
        Edges as indices into ``x``.
    edge_weight : Tensor (e,)
        Positive edge weights.
    edge_pair : Tensor (e,) int64
        Region pair of each edge, ``i * n + j`` (for a mask shared across subjects).
    n_graphs, n_nodes : int
        ``b`` and ``n``.
    """

    x: torch.Tensor
    edge_index: torch.Tensor
    edge_weight: torch.Tensor
    edge_pair: torch.Tensor
    n_graphs: int
    n_nodes: int

    def to(self, device: torch.device | str) -> GraphBatch:
        return GraphBatch(self.x.to(device), self.edge_index.to(device), self.edge_weight.to(device),
                          self.edge_pair.to(device), self.n_graphs, self.n_nodes)


def collate(graphs: SubjectGraphs, indices: np.ndarray | list[int]) -> GraphBatch:
    """Stack the graphs of subjects ``indices`` into one :class:`GraphBatch`."""
    indices = np.asarray(indices, dtype=int)
    n = graphs.n_regions
    x = torch.from_numpy(graphs.features[indices].reshape(len(indices) * n, -1))
    edge_index = np.concatenate([graphs.edge_index[s] + g * n for g, s in enumerate(indices)], axis=1)
    pair = np.concatenate([graphs.edge_index[s][0] * n + graphs.edge_index[s][1] for s in indices])
    weight = np.concatenate([graphs.edge_weight[s] for s in indices])
    return GraphBatch(x=x, edge_index=torch.from_numpy(edge_index), edge_weight=torch.from_numpy(weight),
                      edge_pair=torch.from_numpy(pair), n_graphs=len(indices), n_nodes=n)


def concatenate_graphs(first: SubjectGraphs, second: SubjectGraphs) -> SubjectGraphs:
    """Early fusion: node features side by side ``(s, n, f1 + f2)`` and the union of the edges
    (a pair kept in both keeps the larger weight)."""
    if first.features.shape[:2] != second.features.shape[:2]:
        raise ValueError("Early fusion needs the same subjects and regions in both modalities.")
    n = first.n_regions
    features = np.concatenate([first.features, second.features], axis=2)
    edge_index, edge_weight = [], []
    for s in range(len(first)):
        dense = np.zeros((n, n), dtype=np.float32)
        for graphs in (first, second):
            src, dst = graphs.edge_index[s]
            dense[src, dst] = np.maximum(dense[src, dst], graphs.edge_weight[s])
        src, dst = np.nonzero(dense)
        edge_index.append(np.stack([src, dst]).astype(np.int64))
        edge_weight.append(dense[src, dst])
    return SubjectGraphs(features=features, edge_index=edge_index, edge_weight=edge_weight)
