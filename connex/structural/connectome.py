"""Structural connectome matrices from a tractogram: streamline end points assigned to atlas regions
(with a search radius into the white matter), one matrix per edge weight."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

import numpy as np
from scipy import ndimage

from connex.registry import SC_WEIGHTS

#: Streamlines whose points are interpolated at once: bounds the memory of a large tractogram
#: (bids-xa30's 140,750: the job peaked at 275 MB with 20,000, 111 MB with this, in the same time).
CHUNK = 2000


def _streamline_features(streamlines: list[np.ndarray], search: np.ndarray, to_voxel: np.ndarray, fa: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per streamline ``(n_i, 3)`` (world mm, 2 points or more): the region pair of its two ends
    ``(k, 2)`` (0: unassigned; ``search`` is the label volume with the search radius), its length
    ``(k,)`` and its mean FA ``(k,)`` (trilinear; ``to_voxel`` maps world mm to ``fa``'s voxels)."""
    ends = np.concatenate([np.stack([s[0], s[-1]]) for s in streamlines])
    voxels = np.rint(ends @ to_voxel[:3, :3].T + to_voxel[:3, 3]).astype(int)
    inside = np.all((voxels >= 0) & (voxels < search.shape), axis=1)
    end_labels = np.zeros(len(ends), dtype=int)
    end_labels[inside] = search[tuple(voxels[inside].T)]
    points = np.concatenate(streamlines)
    counts = np.array([len(s) for s in streamlines])
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    steps = np.r_[np.linalg.norm(np.diff(points, axis=0), axis=1), 0.0]  # steps[k]: point k to k + 1
    steps[starts[1:] - 1] = 0.0  # from one streamline's last point to the next one's first
    lengths = np.add.reduceat(steps, starts)
    samples = ndimage.map_coordinates(fa, (points @ to_voxel[:3, :3].T + to_voxel[:3, 3]).T, order=1,
                                      mode="nearest")
    return end_labels.reshape(-1, 2), lengths, np.add.reduceat(samples, starts) / counts


def assignment_labels(labels: np.ndarray, voxel_mm: float, radius_mm: float) -> np.ndarray:
    """Labels with unlabelled voxels given the nearest region within ``radius_mm`` (else 0)."""
    if radius_mm <= 0 or not (labels > 0).any():
        return labels
    distance, indices = ndimage.distance_transform_edt(labels == 0, return_indices=True)
    nearest = labels[tuple(indices)]
    return np.where((labels == 0) & (distance * voxel_mm <= radius_mm), nearest, labels)


def connectome(streamlines: Iterable[np.ndarray], labels: np.ndarray, affine: np.ndarray, n_regions: int,
               fa: np.ndarray, *, assignment_radius_mm: float = 4.0, self_loops: bool = False
               ) -> tuple[dict[str, np.ndarray], dict]:
    """Structural connectome matrices (n_regions, n_regions) in atlas order, one per weight.

    Parameters
    ----------
    streamlines : iterable of (n_i, 3) arrays, world mm
        Consumed ``CHUNK`` at a time (a generator such as :func:`~connex.structural.tracking.iter_tractogram`'s
        is never held whole); streamlines of fewer than two points are skipped.
    labels : ndarray (X, Y, Z) int
        Atlas indices 1..n_regions on the DWI grid (0: unlabelled).
    fa : ndarray (X, Y, Z)
        Sampled (trilinear) along each streamline for the ``fa`` weight.

    Returns the matrices (:data:`connex.registry.SC_WEIGHTS`) and figures (streamlines assigned,
    regions without voxels).
    """
    labels = np.asarray(labels)
    if labels.min() < 0 or labels.max() > n_regions:
        raise ValueError(f"Atlas labels on the DWI grid range {labels.min()}..{labels.max()}; expected 0..{n_regions}.")
    voxel_mm = float(np.abs(np.linalg.det(affine[:3, :3])) ** (1 / 3))
    search = assignment_labels(labels, voxel_mm, assignment_radius_mm)
    to_voxel = np.linalg.inv(affine)
    chunks, n_streamlines, stream = [], 0, iter(streamlines)
    while batch := list(islice(stream, CHUNK)):
        chunk = [s for s in batch if len(s) >= 2]
        if chunk:
            chunks.append(_streamline_features(chunk, search, to_voxel, fa))
            n_streamlines += len(chunk)
    pairs = np.concatenate([c[0] for c in chunks]) if chunks else np.zeros((0, 2), dtype=int)
    lengths = np.concatenate([c[1] for c in chunks]) if chunks else np.zeros(0)
    mean_fa = np.concatenate([c[2] for c in chunks]) if chunks else np.zeros(0)
    valid = (pairs > 0).all(axis=1)
    if not self_loops:
        valid &= pairs[:, 0] != pairs[:, 1]
    i, j = pairs[valid, 0] - 1, pairs[valid, 1] - 1
    matrices = {name: np.zeros((n_regions, n_regions)) for name in ("count", "length", "fa")}
    for name, values in (("count", np.ones(valid.sum())), ("length", lengths[valid]), ("fa", mean_fa[valid])):
        np.add.at(matrices[name], (i, j), values)
    for name in ("count", "length", "fa"):
        matrices[name] = matrices[name] + matrices[name].T - np.diag(np.diag(matrices[name]))
    count = matrices["count"]
    with np.errstate(invalid="ignore", divide="ignore"):
        matrices["length"] = np.where(count > 0, matrices["length"] / count, 0.0)
        matrices["fa"] = np.where(count > 0, matrices["fa"] / count, 0.0)
        volumes_ml = np.bincount(labels.ravel(), minlength=n_regions + 1)[1:] * voxel_mm**3 / 1000
        pair_volume = volumes_ml[:, None] + volumes_ml[None, :]
        matrices["countvolnorm"] = np.where(pair_volume > 0, count / pair_volume, 0.0)
    empty = [int(r) + 1 for r in np.flatnonzero(volumes_ml == 0)]
    figures = {"streamlines": n_streamlines, "streamlines_assigned": int(valid.sum()),
               "fraction_assigned": round(float(valid.mean()) if len(valid) else 0.0, 4),
               "edges_nonzero": int((np.triu(count, 1) > 0).sum()), "regions_without_voxels": empty}
    return {name: matrices[name] for name in SC_WEIGHTS}, figures
