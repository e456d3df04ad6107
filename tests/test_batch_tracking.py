"""The vectorised deterministic tracker against dipy's compiled one, on fields with a known answer
(interpolation) and on random fODF fields where every step is a real choice."""

import numpy as np
import pytest
from scipy import ndimage

from connex.structural.batch_tracking import LOCKSTEP_BATCH, DeterministicTracker, trilinear
from connex.structural.tracking import FODF

MAX_ANGLE, STEP, FA_THRESHOLD = 35.0, 1.0, 0.15


def test_trilinear_follows_dipys_edge_rule():
    """Interior points interpolate linearly; within half a voxel outside the centres the edge
    voxel is repeated; beyond that the point is outside and gets 0 (dipy's trilinear_interpolate4d)."""
    from dipy.core.interpolation import trilinear_interpolate4d

    rng = np.random.default_rng(0)
    volume = rng.normal(size=(5, 4, 3, 2))
    points = np.array([[1.25, 2.5, 0.75], [-0.5, 0.0, 0.0], [4.49, 3.2, 1.9], [-0.51, 1, 1], [2, 2, 2.5]])
    values, inside = trilinear(volume, points)
    assert inside.tolist() == [True, True, True, False, False]
    for point, value, is_in in zip(points, values, inside):
        expected = trilinear_interpolate4d(volume, point) if is_in else np.zeros(2)
        np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-12)
    # by hand: the cell x 1..2, y 2..3, z 0..1 with weights (0.75, 0.25), (0.5, 0.5), (0.25, 0.75)
    weights = np.einsum("i,j,k->ijk", [0.75, 0.25], [0.5, 0.5], [0.25, 0.75])
    np.testing.assert_allclose(values[0], np.einsum("ijk,ijkc->c", weights, volume[1:3, 2:4, 0:2]))
    scalar, _ = trilinear(volume[..., 0], points[:1])
    assert scalar.shape == (1,) and scalar[0] == pytest.approx(values[0, 0])


def _random_field(shape, rng):
    """Smooth random fODF coefficients (order 6) with a positive mean (a fODF with a few lobes
    that turn across the grid) and a smooth FA that crosses the threshold, so streamlines bend,
    fork at crossings and stop at many places; float32-exact, as the batch tracker keeps it."""
    n_coef = 28
    shm = ndimage.gaussian_filter(rng.normal(size=shape + (n_coef,)), sigma=(1.5, 1.5, 1.5, 0))
    shm[..., 0] = np.abs(shm[..., 0]) + 0.5
    fa = ndimage.gaussian_filter(rng.uniform(0, 0.6, size=shape), sigma=2.0)
    fa = (fa - fa.min()) / (fa.max() - fa.min()) * 0.5
    return shm.astype(np.float32).astype(np.float64), fa


def _dipy_streamlines(shm, fa, affine, seeds_world, max_nbr_pts):
    from dipy.data import default_sphere
    from dipy.tracking.stopping_criterion import ThresholdStoppingCriterion
    from dipy.tracking.tracker import deterministic_tracking

    voxel_size = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    found = deterministic_tracking(seeds_world, ThresholdStoppingCriterion(fa, FA_THRESHOLD), affine, sh=shm,
                                   min_len=0, max_len=max_nbr_pts * STEP, step_size=STEP, voxel_size=voxel_size,
                                   max_angle=MAX_ANGLE, sphere=default_sphere, nbr_threads=1, random_seed=1,
                                   return_all=True, save_seeds=True)
    return {tuple(np.round(seed, 6)): streamline for streamline, seed in found}


@pytest.mark.parametrize("zooms, oblique", [((2.0, 2.0, 2.0), False), ((2.0, 1.5, 3.0), True)])
def test_batch_tracker_gives_dipys_streamlines(zooms, oblique):
    """Every seed gives dipy's streamline point for point (float32 rounding), on an isotropic axial
    grid and on an anisotropic oblique one (where the backward half starts off the sphere's
    vertices); threads and batch size do not change the result."""
    from dipy.data import default_sphere

    rng = np.random.default_rng(7)
    shape = (14, 12, 10)
    shm, fa = _random_field(shape, rng)
    region = rng.random(shape) > 0.1  # a tenth of the voxels have no fODF, and no stored row
    shm[~region] = 0.0
    affine = np.diag(zooms + (1.0,))
    if oblique:
        angle = np.deg2rad(20)
        rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
        affine[:3, :3] = rotation @ affine[:3, :3]
        affine[:3, 3] = [-10, 5, 3]
    seeds_voxel = rng.uniform(0, np.array(shape) - 1, size=(600, 3))
    seeds_world = seeds_voxel @ affine[:3, :3].T + affine[:3, 3]
    max_nbr_pts = 60
    tracker = DeterministicTracker(FODF.from_dense(shm, region), fa, FA_THRESHOLD, default_sphere, np.array(zooms),
                                   step_size=STEP, max_angle=MAX_ANGLE, max_nbr_pts=max_nbr_pts)
    vertex, ok = tracker.seed_directions(seeds_voxel)
    ours = tracker.track(seeds_voxel)
    assert len(ours) == ok.sum() > 500
    reference = _dipy_streamlines(shm, fa, affine, seeds_world, max_nbr_pts)
    by_seed = {tuple(np.round(seed, 6)): streamline @ affine[:3, :3].T + affine[:3, 3]
               for seed, streamline in zip(seeds_world[ok], ours)}
    # dipy drops streamlines of more than max_nbr_pts points; otherwise the same seeds give streamlines
    assert set(reference) == {key for key, s in by_seed.items() if len(s) <= max_nbr_pts}
    lengths = np.array([len(s) for s in reference.values()])
    assert lengths.min() < 10 and np.median(lengths) > 10 and (lengths > 30).sum() > 20  # real paths, varied stops
    for key, expected in reference.items():
        assert by_seed[key].shape == expected.shape
        np.testing.assert_allclose(by_seed[key], expected, atol=2e-5)
    turned = [s for s in reference.values() if len(s) > 20]
    steps = np.concatenate([np.diff(s, axis=0) for s in turned])
    assert np.ptp(steps / np.linalg.norm(steps, axis=1, keepdims=True), axis=0).min() > 1.0  # not one direction
    small = DeterministicTracker(FODF.from_dense(shm, region), fa, FA_THRESHOLD, default_sphere, np.array(zooms),
                                 step_size=STEP, max_angle=MAX_ANGLE, max_nbr_pts=max_nbr_pts)
    assert LOCKSTEP_BATCH > 100
    threaded = small.track(seeds_voxel, threads=2)
    assert len(threaded) == len(ours) and all(np.array_equal(a, b) for a, b in zip(ours, threaded))


def test_batch_tracker_stops_where_dipy_does():
    """A straight fibre along x in a band of FA above the threshold: the streamline runs to the
    last point whose FA is above it (the stopping point is dropped), and a seed with no positive
    fODF gives nothing."""
    from dipy.data import default_sphere
    from dipy.reconst.shm import sf_to_sh

    shape = (20, 5, 5)
    odf = np.exp(-((default_sphere.vertices @ [1.0, 0, 0]) ** 2 - 1) ** 2 / 0.01)  # peaked along +-x
    shm = np.broadcast_to(sf_to_sh(odf, default_sphere, sh_order_max=8), shape + (45,)).copy()
    shm[:, :, 4] = 0.0  # no fODF in the z = 4 slice
    fa = np.zeros(shape)
    fa[4:15] = 0.5  # x = 4..14 above the threshold
    tracker = DeterministicTracker(FODF.from_dense(shm), fa, FA_THRESHOLD, default_sphere, np.ones(3), step_size=STEP,
                                   max_angle=MAX_ANGLE, max_nbr_pts=100)
    vertex, ok = tracker.seed_directions(np.array([[9.0, 2, 2], [9.0, 2, 4]]))
    assert ok.tolist() == [True, False]
    assert abs(default_sphere.vertices[vertex[0]] @ [1.0, 0, 0]) > 0.99
    (streamline,) = tracker.track(np.array([[9.0, 2, 2], [9.0, 2, 4]]))
    xs = np.sort(streamline[:, 0])
    # FA interpolates above 0.15 from x = 3.3 to x = 14.7: the points 4..14 stay, 3 and 15 stop
    assert len(streamline) == 11 and xs[0] == pytest.approx(4, abs=0.05) and xs[-1] == pytest.approx(14, abs=0.05)
    np.testing.assert_allclose(streamline[:, 1:], 2.0, atol=0.3)  # the sphere's nearest vertex is 2-3 deg off x
