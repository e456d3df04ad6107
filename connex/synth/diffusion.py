"""The synthetic DWI: white-matter bundles routed through the template's white matter, rasterised
into fibre density and direction on a subject's grid, and the diffusion signal they give."""

from __future__ import annotations

import numpy as np
from dipy.core.gradients import GradientTable, gradient_table
from dipy.core.sphere import HemiSphere, disperse_charges
from dipy.sims.voxel import add_noise
from scipy import ndimage

from connex.anat.templates import MNITemplate
from connex.inputs.checks import B0_THRESHOLD
from connex.synth.atlas import Parcellation
from connex.synth.images import T2_BRIGHTNESS, Grid, apply_affine, sample_tissues
from connex.synth.networks import GroupNetworks

# Diffusivities (mm^2/s) of a single fibre population (FA about 0.8) and of the free compartments.
FIBRE_AXIAL = 1.7e-3
FIBRE_RADIAL = 0.3e-3
ISOTROPIC_DIFFUSIVITY = {"gm": 0.9e-3, "wm": 0.8e-3, "csf": 3.0e-3}


# --------------------------------------------------------------------------------------- DWI

def make_gradient_table(rng: np.random.Generator, *, n_b0: int, n_directions: int,
                        bvalues: tuple[float, ...]) -> GradientTable:
    """b=0 volumes interleaved with ``n_directions`` electrostatically spread directions per shell."""
    theta = np.arccos(rng.uniform(-1, 1, n_directions))
    phi = rng.uniform(0, 2 * np.pi, n_directions)
    spread, _ = disperse_charges(HemiSphere(theta=theta, phi=phi), 2000)
    directions = spread.vertices
    bvals, bvecs = [], []
    for b in bvalues:
        bvals += [b] * n_directions
        bvecs.append(directions)
    bvals = np.array(bvals, float)
    bvecs = np.vstack(bvecs)
    # Spread the b=0 volumes through the series (one first), as scanners usually do.
    positions = np.linspace(0, len(bvals) + n_b0 - 1, n_b0).round().astype(int)
    for position in positions:
        bvals = np.insert(bvals, position, 0.0)
        bvecs = np.insert(bvecs, position, [0.0, 0.0, 0.0], axis=0)
    return gradient_table(bvals, bvecs=bvecs, b0_threshold=B0_THRESHOLD)


# Bundle routing (see bundle_curves): candidate waypoints per bundle, how deep long association
# bundles run, how far from the anchor a bundle may end, and the weights of the route score.
_ROUTE_CANDIDATES = 60
_DEPTH_PER_MM = 0.08
_MAX_DEPTH_MM = 6.0
_MIDLINE_DEPTH_MM = 2.5
_END_RADIUS_MM = 10.0
_END_SKIP_MM = 8.0
_GAP_WEIGHT = 10.0
_DETOUR_WEIGHT = 0.01


def bundle_curves(parcellation: Parcellation, group: GroupNetworks, template: MNITemplate,
                  *, points_per_mm: float = 1.0) -> list[np.ndarray]:
    """One smooth curve (p, 3) in MNI mm per bundle, from one region to the other.

    Each bundle is a quadratic Bezier curve through a white-matter waypoint of its own (the
    curve's middle, s = 0.5), so bundles spread through the white matter and cross one another
    where their routes meet, not in one central knot:

    - association bundles (both regions in one hemisphere) pass through that hemisphere's white
      matter beneath the middle of their chord, at their own anterior-posterior and vertical
      position; the waypoint lies at least ``0.08 x chord length`` (at most 6 mm) inside the
      white matter, so long bundles run deep and short ones close under the cortex (U-fibres);
    - commissural bundles (one region per hemisphere) cross the midline through the midline
      white matter (the corpus callosum) at the point nearest the middle of their chord, so at
      their own anterior-posterior position (at least 2.5 mm inside the white matter, or the
      association rule's depth if smaller).

    Candidates are the 60 white-matter voxels (``template.wm > 0.5``) nearest the middle of the
    chord that meet these rules; the one chosen minimises, along its curve, 10 x the fraction of
    points outside the brain tissue (``wm + gm < 0.5``: CSF or outside the brain, where
    :func:`render_dwi` draws no fibres and the bundle would be cut) plus the fraction outside
    white matter (skipping the 8 mm at each end, which lie in cortex), plus 0.01 per mm of
    detour from the nearest candidate. Each end is the voxel of its region, within 10 mm of the
    region's anchor, nearest the waypoint, so a region's bundles leave it from different points
    (as fibres to different targets leave different parts of a cortical area) rather than all
    from one point. Deterministic: no random draws.
    """
    voxel_mm = round(float(np.abs(np.linalg.det(template.affine[:3, :3])) ** (1 / 3)), 6)
    white = template.wm > 0.5
    depth = ndimage.distance_transform_edt(white)[white] * voxel_mm
    white_mm = apply_affine(template.affine, np.argwhere(white).astype(float))
    midline = np.abs(white_mm[:, 0]) < voxel_mm / 2
    to_voxel = np.linalg.inv(template.affine)
    tissue = template.wm + template.gm

    def sample(volume: np.ndarray, points: np.ndarray) -> np.ndarray:
        return ndimage.map_coordinates(volume, apply_affine(to_voxel, points).T, order=1)

    labelled = np.argwhere(parcellation.labels > 0)
    region_mm = apply_affine(parcellation.affine, labelled.astype(float))
    region_of = parcellation.labels[tuple(labelled.T)]
    ends = []
    for r, anchor in enumerate(parcellation.anchors):
        points = region_mm[region_of == r + 1]
        ends.append(points[np.linalg.norm(points - anchor, axis=1) <= _END_RADIUS_MM])

    def end_near(region: int, waypoint: np.ndarray) -> np.ndarray:
        candidates = ends[region]
        if not len(candidates):
            return parcellation.anchors[region]
        return candidates[((candidates - waypoint) ** 2).sum(1).argmin()]

    curves = []
    for i, j in group.sc_edges:
        start, end = parcellation.anchors[i], parcellation.anchors[j]
        middle = 0.5 * (start + end)
        need = min(_MAX_DEPTH_MM, _DEPTH_PER_MM * np.linalg.norm(end - start))
        if np.sign(start[0]) != np.sign(end[0]):  # commissural: through the midline white matter
            allowed = midline & (depth >= min(need, _MIDLINE_DEPTH_MM))
        else:  # association: through this hemisphere's white matter, deeper for longer bundles
            allowed = (white_mm[:, 0] * np.sign(start[0]) >= voxel_mm) & (depth >= need)
        if not allowed.any():
            allowed = np.ones(len(white_mm), dtype=bool)
        waypoints = white_mm[allowed]
        squared = ((waypoints - middle) ** 2).sum(1)  # exact on the template grid: a stable order
        distance = np.sqrt(squared)
        candidates = np.argsort(squared, kind="stable")[:_ROUTE_CANDIDATES]
        routes = [_bezier_through(end_near(i, waypoints[k]), waypoints[k], end_near(j, waypoints[k]),
                                  points_per_mm) for k in candidates]
        # Score every candidate route in one pass over their concatenated points.
        sizes = np.array([len(r) for r in routes])
        starts = np.r_[0, np.cumsum(sizes)[:-1]]
        points = np.concatenate(routes)
        arcs = [np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(r, axis=0), axis=1))] for r in routes]
        arc, length = np.concatenate(arcs), np.repeat([a[-1] for a in arcs], sizes)
        inner = (arc > _END_SKIP_MM) & (arc < length - _END_SKIP_MM)  # not in the cortex at either end
        off_tissue = np.add.reduceat((sample(tissue, points) < 0.5).astype(float), starts) / sizes
        off_white = np.add.reduceat(((sample(template.wm, points) < 0.5) & inner).astype(float), starts)
        score = _GAP_WEIGHT * off_tissue + off_white / np.maximum(np.add.reduceat(inner.astype(float), starts), 1)
        score += _DETOUR_WEIGHT * (distance[candidates] - distance.min())
        best_curve = routes[int(np.argmin(score))]
        curves.append(best_curve)
    return curves


def _bezier_through(start: np.ndarray, middle: np.ndarray, end: np.ndarray, points_per_mm: float) -> np.ndarray:
    """The quadratic Bezier curve from ``start`` to ``end`` that passes ``middle`` at s = 0.5, at
    evenly spaced s: 1.3 x ``points_per_mm`` points per mm of its control polygon (at least 8)."""
    control = 2.0 * middle - 0.5 * (start + end)
    polygon = np.linalg.norm(control - start) + np.linalg.norm(end - control)  # >= the arc length
    n_points = max(int(polygon * points_per_mm * 1.3), 8)
    s = np.linspace(0, 1, n_points)[:, None]
    return (1 - s) ** 2 * start + 2 * s * (1 - s) * control + s ** 2 * end


def render_dwi(template: MNITemplate, grid: Grid, subject_to_mni: np.ndarray,
               curves_mni: list[np.ndarray], strengths: np.ndarray, gtab: GradientTable,
               rng: np.random.Generator, *, intensity_scale: float, snr: float,
               base_radius_mm: float = 2.0, fibre_fraction: float = 0.7,
               max_fibre_fraction: float = 0.85, background_fibre_fraction: float = 0.0) -> np.ndarray:
    """A DWI series (X, Y, Z, g) int16 with b-vectors in voxel axes (FSL convention for LAS).

    Each voxel holds free water in its tissue mix and, where bundles pass, one stick-like
    tensor per bundle along the bundle's local direction (several where bundles cross).
    A bundle's radius grows with the square root of its strength, so its cross-section (and
    the streamline count a uniform white-matter seeding gives it) grows with the strength.
    Rician noise has sigma = b=0 white-matter signal / ``snr``.

    ``background_fibre_fraction`` above 0 fills the white matter outside the bundles with fibres
    that join no pair of regions (as most of a real brain's white matter does for an atlas's
    edges): a stick of that fraction (times the WM probability) along a smooth random orientation
    field (coherent over about a centimetre), which gives white matter a realistic FA and
    tractography false paths to follow.
    """
    tissues = sample_tissues(template, grid, subject_to_mni)
    total = sum(tissues.values())
    in_brain = total > 0.3
    safe_total = np.where(in_brain, total, 1.0)
    s0 = sum(T2_BRIGHTNESS[k] * v for k, v in tissues.items()) / safe_total * in_brain
    diffusivity = sum(ISOTROPIC_DIFFUSIVITY[k] * v for k, v in tissues.items()) / safe_total
    bvals = gtab.bvals
    bvecs = gtab.bvecs
    free = np.exp(-np.multiply.outer(diffusivity, bvals))  # (X, Y, Z, g)

    voxel_ids, bundle_ids, tangents = rasterize_bundles(curves_mni, strengths, grid, subject_to_mni,
                                                        base_radius_mm=base_radius_mm)
    white = (tissues["wm"] + tissues["gm"]).ravel()[voxel_ids]
    keep = white > 0.5
    voxel_ids, bundle_ids, tangents = voxel_ids[keep], bundle_ids[keep], tangents[keep]
    weight = np.full(len(voxel_ids), fibre_fraction)
    n_voxels = int(np.prod(grid.shape))
    per_voxel = np.bincount(voxel_ids, weights=weight, minlength=n_voxels)
    weight *= np.minimum(1.0, max_fibre_fraction / per_voxel[voxel_ids])
    fibre_total = np.bincount(voxel_ids, weights=weight, minlength=n_voxels)

    if background_fibre_fraction > 0:
        voxel_ids, tangents, weight = _add_background_fibres(
            voxel_ids, tangents, weight, tissues["wm"], grid, rng, background_fibre_fraction)
        fibre_total = np.bincount(voxel_ids, weights=weight, minlength=n_voxels)
    cos2 = (tangents @ bvecs.T) ** 2  # (m, g)
    sticks = np.exp(-bvals * (FIBRE_RADIAL + (FIBRE_AXIAL - FIBRE_RADIAL) * cos2)) * weight[:, None]
    fibre_signal = np.zeros((n_voxels, len(bvals)))
    np.add.at(fibre_signal, voxel_ids, sticks)

    signal = free.reshape(n_voxels, -1) * (1.0 - fibre_total)[:, None] + fibre_signal
    signal = signal.reshape(*grid.shape, len(bvals)) * s0[..., None] * 1000.0 * intensity_scale
    white_matter_s0 = T2_BRIGHTNESS["wm"] * 1000.0 * intensity_scale
    noisy = add_noise(signal, snr=snr, S0=white_matter_s0, noise_type="rician", rng=rng)
    return np.round(noisy).astype(np.int16)


def _add_background_fibres(voxel_ids: np.ndarray, tangents: np.ndarray, weight: np.ndarray, wm: np.ndarray,
                           grid: Grid, rng: np.random.Generator, fraction: float
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bundle sticks plus one stick in every white-matter voxel (WM > 0.5) no bundle covers:
    weight ``fraction`` x WM, direction a smoothed random vector field (sigma 8 mm)."""
    voxel_mm = float(np.abs(np.linalg.det(grid.affine[:3, :3])) ** (1 / 3))
    field = np.stack([ndimage.gaussian_filter(rng.standard_normal(grid.shape), 8.0 / voxel_mm)
                      for _ in range(3)], axis=-1).reshape(-1, 3)
    covered = np.zeros(int(np.prod(grid.shape)), bool)
    covered[voxel_ids] = True
    free = np.flatnonzero((wm.ravel() > 0.5) & ~covered)
    directions = field[free] / np.maximum(np.linalg.norm(field[free], axis=1, keepdims=True), 1e-12)
    return (np.r_[voxel_ids, free], np.vstack([tangents, directions]),
            np.r_[weight, fraction * np.clip(wm.ravel()[free], 0, 1)])


def rasterize_bundles(curves_mni: list[np.ndarray], strengths: np.ndarray, grid: Grid,
                      subject_to_mni: np.ndarray, *, base_radius_mm: float
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxels (flat indices) within each bundle's radius, with the bundle's unit direction there.

    Returns ``voxel_ids (m,)``, ``bundle_ids (m,)`` and ``tangents (m, 3)`` in voxel axes; a
    voxel appears once per bundle that covers it, with the direction of the bundle's nearest point.
    """
    mni_to_voxel = np.linalg.inv(grid.affine) @ np.linalg.inv(subject_to_mni)
    voxel_size = float(np.abs(np.linalg.det(grid.affine[:3, :3])) ** (1 / 3))
    shape = np.array(grid.shape)
    all_ids, all_bundles, all_tangents = [], [], []
    for b, (curve, strength) in enumerate(zip(curves_mni, strengths)):
        points = apply_affine(mni_to_voxel, curve)
        tangent = np.gradient(points, axis=0)
        tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
        radius = np.clip(base_radius_mm * np.sqrt(strength), 1.2, 5.0) / voxel_size
        reach = int(np.ceil(radius))
        offsets = np.stack(np.meshgrid(*[np.arange(-reach, reach + 1)] * 3, indexing="ij"), -1).reshape(-1, 3)
        candidates = np.round(points)[:, None, :].astype(int) + offsets[None]  # (p, o, 3)
        distance = np.linalg.norm(candidates - points[:, None, :], axis=-1)
        inside = (distance <= radius) & np.all((candidates >= 0) & (candidates < shape), axis=-1)
        point_index = np.broadcast_to(np.arange(len(points))[:, None], inside.shape)[inside]
        flat = np.ravel_multi_index(tuple(candidates[inside].T), grid.shape)
        order = np.lexsort((distance[inside], flat))  # by voxel, nearest point first
        unique_flat, first = np.unique(flat[order], return_index=True)
        all_ids.append(unique_flat)
        all_bundles.append(np.full(len(unique_flat), b))
        all_tangents.append(tangent[point_index[order][first]])
    return np.concatenate(all_ids), np.concatenate(all_bundles), np.vstack(all_tangents)
