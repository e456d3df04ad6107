"""BOLD realignment: known motion (drift, a sudden step, a spin-history dip) recovered on RAS and
LAS grids, the motion parameter convention the confounds expect, progress lines in the log."""

import logging

import numpy as np
import pytest

from connex.anat.coreg import rigid_matrix
from connex.functional.confounds import MOTION_COLUMNS, framewise_displacement
from connex.functional.realign import realign
from connex.functional.series import BoldSeries

PHANTOM_CENTRE_MM = np.array([2.0, -15.0, 10.0])


def phantom(world_mm: np.ndarray) -> np.ndarray:
    """A head-like object as a function of world (RAS) position (N, 3): a soft-edged ellipsoid
    with blobs of texture, the same physical object on any grid."""
    rng = np.random.default_rng(5)
    relative = world_mm - PHANTOM_CENTRE_MM
    radius = np.sqrt(((relative / np.array([62.0, 72.0, 56.0])) ** 2).sum(1))
    head = 1.0 / (1.0 + np.exp((radius - 1.0) * 8.0))
    blobs = rng.uniform(-45, 45, (40, 3))
    weights = rng.choice([-1.0, 1.0], 40) * rng.uniform(0.2, 0.5, 40)
    texture = sum(w * np.exp(-((relative - b) ** 2).sum(1) / (2 * 9.0 ** 2)) for w, b in zip(weights, blobs))
    return (1000.0 * head * (1.0 + texture)).astype(np.float32)


def grid_affine(orientation: str, voxel_mm: float = 4.0) -> tuple[np.ndarray, tuple[int, int, int]]:
    shape = (40, 44, 36)
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = PHANTOM_CENTRE_MM - voxel_mm * (np.array(shape) - 1) / 2
    if orientation == "LAS":
        affine[0, 0] = -voxel_mm
        affine[0, 3] = PHANTOM_CENTRE_MM[0] + voxel_mm * (shape[0] - 1) / 2
    return affine, shape


def moved_series(orientation: str, truth: list[np.ndarray], dips: dict[int, float] | None = None) -> BoldSeries:
    """Volume t shows the phantom moved by the world transform ``truth[t]``; ``dips`` darkens
    every other slice of some volumes (spin history after a sudden movement)."""
    affine, shape = grid_affine(orientation)
    voxels = np.indices(shape).reshape(3, -1).T
    world = voxels @ affine[:3, :3].T + affine[:3, 3]
    volumes = []
    for index, matrix in enumerate(truth):
        static_mm = (np.c_[world, np.ones(len(world))] @ np.linalg.inv(matrix).T)[:, :3]
        volume = phantom(static_mm).reshape(shape)
        if dips and index in dips:
            volume[:, :, 0::2] *= 1 - dips[index]
            volume[:, :, 1::2] *= 1 - dips[index] / 3
        volumes.append(volume)
    return BoldSeries(data=np.stack(volumes, axis=3), affine=affine, repetition_time=2.0, slice_timing=None,
                      slice_axis=2, source=f"phantom {orientation}")


def head_points(series: BoldSeries, reference_index: int) -> np.ndarray:
    """(4, N) homogeneous world positions where the reference volume shows the head."""
    inside = np.argwhere(series.data[..., reference_index] > 500)
    world = inside @ series.affine[:3, :3].T + series.affine[:3, 3]
    return np.c_[world, np.ones(len(world))].T


def mean_displacement(a: np.ndarray, b: np.ndarray, points: np.ndarray) -> float:
    return float(np.linalg.norm(((a - b) @ points)[:3], axis=0).mean())


@pytest.mark.parametrize("orientation", ["RAS", "LAS"])
def test_realign_recovers_drift_and_a_sudden_step(orientation):
    degrees = np.pi / 180
    parameters = np.array([[0.0, 0, 0, 0, 0, 0],
                           [0.2, -0.1, 0.1, 0.1 * degrees, 0, 0.1 * degrees],
                           [0.4, -0.2, 0.2, 0.2 * degrees, 0, 0.2 * degrees],
                           [3.2, -2.2, 1.2, 2.2 * degrees, -1.0 * degrees, 1.7 * degrees],  # a sudden step
                           [3.3, -2.3, 1.3, 2.2 * degrees, -1.1 * degrees, 1.8 * degrees],
                           [3.4, -2.4, 1.3, 2.3 * degrees, -1.1 * degrees, 1.8 * degrees]])
    truth = [rigid_matrix(p, PHANTOM_CENTRE_MM + [5, -3, 4]) for p in parameters]
    series = moved_series(orientation, truth, dips={3: 0.15})
    reference = 2
    realigned, motion, centre = realign(series, reference_index=reference)
    points = head_points(series, reference)
    for index in range(len(truth)):
        expected = truth[index] @ np.linalg.inv(truth[reference])  # reference positions -> volume positions
        error = mean_displacement(rigid_matrix(motion[index], centre), expected, points)
        no_correction = mean_displacement(np.eye(4), expected, points)
        assert error < 0.1, (index, error)  # mm, on 4 mm voxels
        if index != reference:
            assert no_correction > 0.2 and error < 0.25 * no_correction, (index, error, no_correction)
    inside = series.data[..., reference] > 500
    before = np.abs(series.data[..., 4] - series.data[..., reference])[inside].mean()
    after = np.abs(realigned.data[..., 4] - series.data[..., reference])[inside].mean()
    assert after < 0.2 * before


@pytest.mark.parametrize("orientation", ["RAS", "LAS"])
def test_motion_parameters_follow_the_confounds_convention(orientation):
    """trans_x/y/z in mm then rot_x/y/z in radians, in world (RAS) axes whatever the voxel order:
    a head moved 2 mm to the right has trans_x = +2; turned 1 degree about z (x towards y, seen
    from above), rot_z = +0.0175; framewise displacement then reads 2 mm and 50 mm x 0.0175."""
    turn = np.radians(1.0)
    truth = [np.eye(4), rigid_matrix(np.array([2.0, 0, 0, 0, 0, 0]), PHANTOM_CENTRE_MM),
             rigid_matrix(np.array([0, 0, 0, 0, 0, turn]), PHANTOM_CENTRE_MM)]
    series = moved_series(orientation, truth)
    _, motion, centre = realign(series, reference_index=0)
    assert MOTION_COLUMNS == ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
    # The same transforms as parameters about the rotation centre realign reports.
    expected = np.array([np.r_[m[:3, :3] @ centre + m[:3, 3] - centre, 0, 0, 0] for m in truth])
    expected[2, 3:] = [0, 0, turn]
    assert np.allclose(motion[1], expected[1], atol=[0.03] * 3 + [1e-3] * 3), motion[1]
    assert np.allclose(motion[2], expected[2], atol=[0.03] * 3 + [1e-3] * 3), motion[2]
    assert motion[1, 0] == pytest.approx(2.0, abs=0.03)
    assert motion[2, 5] == pytest.approx(turn, abs=1e-3)
    fd = framewise_displacement(motion)
    assert fd[0] == 0
    assert fd[1] == pytest.approx(2.0, abs=0.1)
    assert fd[2] == pytest.approx(np.abs(expected[2, :3] - expected[1, :3]).sum() + 50 * turn, abs=0.1)


def test_realign_logs_progress(caplog):
    series = moved_series("LAS", [rigid_matrix(np.array([0.3 * t, 0, 0, 0, 0, 0]), PHANTOM_CENTRE_MM)
                                  for t in range(5)])
    with caplog.at_level(logging.INFO, logger="connex.functional.realign"):
        realign(series, progress_every=2)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Realignment:")]
    assert [line.split(",")[0] for line in lines] == ["Realignment: 2/5 volumes", "Realignment: 4/5 volumes",
                                                      "Realignment: 5/5 volumes"]
    assert all("s left" in line for line in lines)
