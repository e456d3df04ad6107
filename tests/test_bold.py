"""BOLD loading checks, slice timing, realignment, framewise displacement and confounds."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from connex.anat.coreg import rigid_matrix
from connex.errors import BIDSError
from connex.functional.confounds import (
    MOTION_COLUMNS,
    TissueMasks,
    compute_confounds,
    expand,
    framewise_displacement,
    tissue_masks,
)
from connex.functional.realign import realign
from connex.functional.series import BoldSeries, correct_slice_timing, load_bold


def write_bold(path, data, *, tr=2.0, units="sec"):
    image = nib.Nifti1Image(data.astype(np.float32), np.diag([3.0, 3.0, 3.0, 1.0]))
    image.header.set_xyzt_units("mm", units)
    image.header["pixdim"][4] = tr
    nib.save(image, path)
    return path


def smooth_head(rng, shape=(24, 26, 22)):
    """A blurred random volume inside an ellipsoid: texture that constrains rigid motion."""
    grid = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1) / 2
    inside = (((grid - centre[:, None, None, None]) / (np.array(shape)[:, None, None, None] / 2.6)) ** 2).sum(0) < 1
    texture = ndimage.gaussian_filter(rng.normal(size=shape), 1.5)
    return (inside * (1000 + 300 * texture / texture.std())).astype(np.float32)


def test_load_bold_checks_name_the_file(tmp_path, rng):
    volume = smooth_head(rng)
    good = np.repeat(volume[..., None], 30, axis=3)
    path = write_bold(tmp_path / "sub-01_task-rest_bold.nii.gz", good)
    series = load_bold(path, {"RepetitionTime": 2.0}, dummy_scans=4)
    assert series.n_volumes == 26 and series.repetition_time == 2.0
    assert np.array_equal(series.data[..., 0], good[..., 4])

    with pytest.raises(BIDSError, match="4-D.*3-D"):
        load_bold(write_bold(tmp_path / "flat_bold.nii.gz", volume), {"RepetitionTime": 2.0})
    with pytest.raises(BIDSError, match=r"sub-01_task-rest_bold.nii.gz.*RepetitionTime 3.0 s.*header's 2 s"):
        load_bold(path, {"RepetitionTime": 3.0})
    with pytest.raises(BIDSError, match="RepetitionTime"):
        load_bold(path, {})
    with pytest.raises(BIDSError, match=r"30 volumes; at least 35 .*25 dummy scans"):
        load_bold(path, {"RepetitionTime": 2.0}, dummy_scans=25, min_volumes=10)
    # A header TR in milliseconds is converted before the comparison.
    in_ms = write_bold(tmp_path / "ms_bold.nii.gz", good, tr=2000.0, units="msec")
    assert load_bold(in_ms, {"RepetitionTime": 2.0}).repetition_time == 2.0

    broken = good.copy()
    broken[3, 3, 3, 7] = np.nan
    with pytest.raises(BIDSError, match=r"nan_bold.nii.gz.*NaN or infinite.*\[7\]"):
        load_bold(write_bold(tmp_path / "nan_bold.nii.gz", broken), {"RepetitionTime": 2.0})
    zero = good.copy()
    zero[..., 12] = 0
    with pytest.raises(BIDSError, match=r"zero_bold.nii.gz.*volume\(s\) \[12\] are all zero"):
        load_bold(write_bold(tmp_path / "zero_bold.nii.gz", zero), {"RepetitionTime": 2.0})
    with pytest.raises(BIDSError, match="SliceTiming has 3 entries but the image has 22 slices"):
        load_bold(path, {"RepetitionTime": 2.0, "SliceTiming": [0, 0.5, 1.0]})


def test_slice_timing_brings_every_slice_to_the_reference_time():
    tr, n_volumes, n_slices = 2.0, 60, 6
    times = np.array([0.0, 1.0, 0.333, 1.333, 0.667, 1.667])  # interleaved
    frequency = 0.03  # Hz, a slow signal the cubic spline follows closely
    volumes = np.arange(n_volumes)
    data = np.zeros((2, 2, n_slices, n_volumes), np.float32)
    for index, acquired in enumerate(times):
        data[:, :, index] = np.sin(2 * np.pi * frequency * (volumes * tr + acquired))
    series = BoldSeries(data=data, affine=np.eye(4), repetition_time=tr, slice_timing=times, slice_axis=2,
                        source="test")
    corrected = correct_slice_timing(series).data
    reference = (times.min() + times.max()) / 2
    expected = np.sin(2 * np.pi * frequency * (volumes * tr + reference))
    inner = slice(3, n_volumes - 3)
    before = np.abs(data[0, 0, :, inner] - expected[inner]).max()
    after = np.abs(corrected[0, 0, :, inner] - expected[inner]).max()
    assert before > 0.1 and after < 0.005


def test_realign_recovers_known_rigid_motion(rng):
    static = smooth_head(rng)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = [-36, -39, -33]
    centre = affine[:3, :3] @ ((np.array(static.shape) - 1) / 2) + affine[:3, 3]
    truth = np.zeros((6, 6))
    truth[1] = [0.8, 0, 0, 0, 0, 0]
    truth[2] = [0.8, -0.5, 0.3, 0.01, 0, 0]
    truth[3] = [0, 0, 1.2, 0, 0.02, -0.015]
    truth[4] = [-0.6, 0.4, 0, 0.005, -0.01, 0.02]
    truth[5] = truth[4]
    volumes = []
    for parameters in truth:  # volume t shows the head moved by truth[t]
        to_static = np.linalg.inv(affine) @ np.linalg.inv(rigid_matrix(parameters, centre)) @ affine
        volumes.append(ndimage.affine_transform(static, to_static[:3, :3], to_static[:3, 3], order=3))
    series = BoldSeries(data=np.stack(volumes, axis=3), affine=affine, repetition_time=2.0, slice_timing=None,
                        slice_axis=2, source="test")
    realigned, motion, estimated_centre = realign(series, reference_index=0)
    points = np.argwhere(static > 0)[::50] @ affine[:3, :3].T + affine[:3, 3]
    homogeneous = np.c_[points, np.ones(len(points))].T
    for index in range(6):
        true_points = rigid_matrix(truth[index], centre) @ homogeneous
        found_points = rigid_matrix(motion[index], estimated_centre) @ homogeneous
        assert np.abs(true_points - found_points).max() < 0.15, index  # mm, on 3 mm voxels
    inside = ndimage.binary_erosion(static > 0, iterations=3)  # away from the sharp edge of the head
    residual = [np.abs(realigned.data[..., t] - static)[inside].mean() for t in range(6)]
    moved = [np.abs(series.data[..., t] - static)[inside].mean() for t in range(6)]
    assert max(residual) < 0.2 * max(moved[1:])


def test_framewise_displacement_matches_nipype(tmp_path, rng):
    from nipype.algorithms.confounds import FramewiseDisplacement

    motion = np.cumsum(rng.normal(0, [0.1, 0.1, 0.1, 0.002, 0.002, 0.002], (20, 6)), axis=0)
    fsl_order = np.c_[motion[:, 3:], motion[:, :3]]  # FSL: rotations (radians) first
    np.savetxt(tmp_path / "params.txt", fsl_order)
    result = FramewiseDisplacement(in_file=str(tmp_path / "params.txt"), parameter_source="FSL",
                                   out_file=str(tmp_path / "fd.txt"), out_figure=str(tmp_path / "fd.pdf"),
                                   save_plot=False).run()
    nipype_fd = np.loadtxt(result.outputs.out_file, skiprows=1)
    ours = framewise_displacement(motion)
    assert ours[0] == 0 and np.allclose(ours[1:], nipype_fd, atol=1e-4)


def test_expand_follows_fmriprep_names():
    table = pd.DataFrame({"csf": [1.0, 3.0, 2.0]})
    expanded = expand(table)
    assert list(expanded.columns) == ["csf", "csf_derivative1", "csf_power2", "csf_derivative1_power2"]
    assert np.isnan(expanded.loc[0, "csf_derivative1"])
    assert expanded["csf_derivative1"].tolist()[1:] == [2.0, -1.0]
    assert expanded["csf_power2"].tolist() == [1.0, 9.0, 4.0]
    assert expanded["csf_derivative1_power2"].tolist()[1:] == [4.0, 1.0]


def test_compute_confounds_columns_and_values(rng):
    shape, n_volumes = (12, 12, 12), 40
    wm = np.zeros(shape, bool)
    wm[2:6, 2:10, 2:10] = True
    csf = np.zeros(shape, bool)
    csf[8:10, 4:8, 4:8] = True
    brain = np.zeros(shape, bool)
    brain[1:11, 1:11, 1:11] = True
    wm_signal = rng.normal(0, 5, n_volumes)
    csf_signal = rng.normal(0, 8, n_volumes)
    data = 1000 + rng.normal(0, 2, shape + (n_volumes,))
    data[wm] += wm_signal
    data[csf] += csf_signal
    series = BoldSeries(data=data.astype(np.float32), affine=np.eye(4), repetition_time=2.0, slice_timing=None,
                        slice_axis=2, source="test")
    motion = np.zeros((n_volumes, 6))
    motion[20:, 0] = 0.7
    table, metadata = compute_confounds(series, motion, TissueMasks(brain=brain, white_matter=wm, csf=csf),
                                        n_compcor=5)
    assert len(table) == n_volumes
    for column in ("global_signal", "white_matter", "csf", "dvars", "std_dvars", "framewise_displacement",
                   "trans_x_derivative1_power2", "rot_z_power2", "a_comp_cor_04", "csf_derivative1"):
        assert column in table.columns, column
    assert set(MOTION_COLUMNS) <= set(table.columns)
    assert np.isnan(table.loc[0, "framewise_displacement"]) and np.isnan(table.loc[0, "dvars"])
    assert table.loc[20, "framewise_displacement"] == pytest.approx(0.7)
    assert np.allclose(table["white_matter"], data[wm].mean(0), rtol=1e-5)
    assert np.corrcoef(table["csf"], csf_signal)[0, 1] > 0.99
    # Voxels are variance-normalised: the first component is the signal most noise voxels share (WM).
    assert abs(np.corrcoef(table["a_comp_cor_00"], wm_signal)[0, 1]) > 0.95
    assert metadata["a_comp_cor_00"]["VarianceExplained"] > metadata["a_comp_cor_01"]["VarianceExplained"]
    # Non-standardised DVARS: RMS over the brain of the temporal difference, after scaling the median to 1000.
    inside = data[brain]
    scaled = inside / np.median(inside) * 1000
    expected = np.sqrt((np.diff(scaled, axis=1) ** 2).mean(0))
    assert np.allclose(table["dvars"].to_numpy()[1:], expected, rtol=1e-3)


def test_missing_noise_mask_is_a_clear_error(rng):
    series = BoldSeries(data=np.ones((4, 4, 4, 10), np.float32), affine=np.eye(4), repetition_time=2.0,
                        slice_timing=None, slice_axis=2, source="sub-09_task-rest_bold.nii.gz")
    empty = np.zeros((4, 4, 4), bool)
    with pytest.raises(BIDSError, match="sub-09_task-rest_bold.nii.gz: the white matter mask is empty"):
        compute_confounds(series, np.zeros((10, 6)), TissueMasks(brain=~empty, white_matter=empty, csf=~empty))



def test_tissue_masks_relax_the_threshold_on_coarse_grids():
    brain = np.ones((10, 10, 10), bool)
    wm = np.zeros(brain.shape)
    wm[2:8, 2:8, 2:8] = 0.95
    csf = np.zeros(brain.shape)
    csf[0:3, 0:3, 0:2] = 0.6  # no voxel reaches 0.9 or 0.7, as thin CSF on a 6 mm grid
    masks = tissue_masks(brain, {"GM": np.zeros(brain.shape), "WM": wm, "CSF": csf})
    assert masks.white_matter.sum() == 4 ** 3  # 6^3 above 0.9, eroded once
    assert masks.csf.sum() == 18


def test_tissue_masks_keep_away_from_grey_matter_unless_nothing_is_left(caplog):
    """As fMRIPrep's: noise voxels with GM probability >= 0.05 are left out; with blurred maps
    (GM everywhere) the exclusion is dropped, with a warning, rather than leaving no mask."""
    brain = np.ones((12, 12, 12), bool)
    wm = np.zeros(brain.shape)
    wm[2:10, 2:10, 2:10] = 0.95
    csf = np.zeros(brain.shape)
    csf[0:4, 0:4, 0:4] = 0.95
    gm = np.zeros(brain.shape)
    gm[:, :, 8:] = 0.3  # cortex over the top of the white matter and nowhere near the CSF
    masks = tissue_masks(brain, {"GM": gm, "WM": wm, "CSF": csf})
    eroded = np.zeros(brain.shape, bool)
    eroded[3:9, 3:9, 3:7] = True  # the 8^3 cube below the GM slab (z 2..7), then eroded once
    assert np.array_equal(masks.white_matter, eroded) and masks.csf.sum() == 4 ** 3
    blurred = tissue_masks(brain, {"GM": np.full(brain.shape, 0.2), "WM": wm, "CSF": csf})
    assert blurred.white_matter.sum() == 6 ** 3 and blurred.csf.sum() == 4 ** 3
    assert "grey matter is not excluded" in caplog.text
