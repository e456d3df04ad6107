"""A symmetric cortical/subcortical parcellation of the MNI grey matter, built offline.

The synthetic cohort needs an atlas whose regions are compact, bilateral and numerous enough
to make interesting networks. It is made from the template's grey-matter map: k-means on the
left-hemisphere grey-matter voxel coordinates, mirrored to the right hemisphere (the template
is symmetric), so region ``k`` and ``k + n/2`` are homotopic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans

from connex.anat.templates import MNITemplate


@dataclass(frozen=True)
class Parcellation:
    """A label image on the template grid with its region table.

    Attributes
    ----------
    labels : ndarray (X, Y, Z) of int16
        0 is background; regions are 1..n.
    affine : ndarray (4, 4)
    table : DataFrame
        Columns ``index``, ``name``, ``hemisphere``, ``network`` (one row per region, in order).
    centroids : ndarray (n, 3)
        Region centroids in MNI mm.
    anchors : ndarray (n, 3)
        The grey-matter voxel of each region nearest its centroid, in MNI mm (a point
        that is surely inside the region, where synthetic bundles end).
    """

    labels: np.ndarray
    affine: np.ndarray
    table: pd.DataFrame
    centroids: np.ndarray
    anchors: np.ndarray

    @property
    def n_regions(self) -> int:
        return len(self.table)


def make_parcellation(template: MNITemplate, n_regions: int, *, n_networks: int = 6,
                      gm_threshold: float = 0.4, random_seed: int = 0) -> Parcellation:
    """Parcellate the template grey matter into ``n_regions`` bilateral regions.

    Parameters
    ----------
    template : MNITemplate
    n_regions : int
        Even number of regions; half per hemisphere.
    n_networks : int
        Number of bilateral functional networks the regions are grouped into (k-means on
        the region centroids), used by the synthetic FC model.
    gm_threshold : float
        Grey-matter probability above which a voxel is labelled.
    random_seed : int
    """
    if n_regions < 4 or n_regions % 2:
        raise ValueError(f"'n_regions' must be an even number >= 4; {n_regions} was provided.")
    if not 1 <= n_networks <= n_regions // 2:
        raise ValueError(f"'n_networks' must be between 1 and n_regions/2; {n_networks} was provided.")
    gm_voxels = np.argwhere((template.gm > gm_threshold) & template.brain_mask)
    mm = _voxels_to_mm(gm_voxels, template.affine)
    half = n_regions // 2
    left = mm[:, 0] < 0
    kmeans = KMeans(n_clusters=half, n_init=4, random_state=random_seed).fit(mm[left])
    # Order regions front to back so names are stable and readable.
    order = np.argsort(-kmeans.cluster_centers_[:, 1], kind="stable")
    left_centres = kmeans.cluster_centers_[order]
    centres = np.vstack([left_centres, left_centres * np.array([-1.0, 1.0, 1.0])])
    # Each voxel goes to the nearest centre of its own hemisphere (x = 0 goes left).
    labels_flat = np.empty(len(mm), dtype=np.int16)
    for hemi_mask, offset in ((left, 0), (~left, half)):
        d2 = ((mm[hemi_mask, None, :] - centres[None, offset:offset + half, :]) ** 2).sum(-1)
        labels_flat[hemi_mask] = d2.argmin(1) + offset + 1
    labels = np.zeros(template.gm.shape, dtype=np.int16)
    labels[tuple(gm_voxels.T)] = labels_flat

    centroids = np.array([mm[labels_flat == k].mean(0) for k in range(1, n_regions + 1)])
    anchors = np.array([
        mm[labels_flat == k][((mm[labels_flat == k] - centroids[k - 1]) ** 2).sum(1).argmin()]
        for k in range(1, n_regions + 1)
    ])
    net_km = KMeans(n_clusters=n_networks, n_init=4, random_state=random_seed).fit(centroids[:half])
    networks = np.concatenate([net_km.labels_, net_km.labels_]) + 1
    table = pd.DataFrame({
        "index": np.arange(1, n_regions + 1),
        "name": [f"{h}_R{k:02d}" for h in "LR" for k in range(1, half + 1)],
        "hemisphere": ["L"] * half + ["R"] * half,
        "network": [f"N{n}" for n in networks],
    })
    return Parcellation(labels=labels, affine=template.affine.copy(), table=table,
                        centroids=centroids, anchors=anchors)


def _voxels_to_mm(voxels: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Map voxel indices (n, 3) to world mm (n, 3)."""
    return voxels @ affine[:3, :3].T + affine[:3, 3]
