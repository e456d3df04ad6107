"""The anatomy stage on the tiny synthetic cohort, against its ground truth, and its input errors."""

import dataclasses

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from connex.anat.atlases import load_synth_atlas
from connex.anat.preprocess import Registration, atlas_to_t1w, load_t1w, register_t1w, tissue_maps_to_t1w
from connex.anat.templates import MNI_SPACE, load_mni_template
from connex.errors import BIDSError
from connex.inputs.paths import bids_path

TRUTH = "derivatives/groundtruth"


@pytest.fixture(scope="module")
def registered(tiny_cohort):
    t1w = load_t1w(bids_path(tiny_cohort, subject="02", datatype="anat", suffix="T1w", extension=".nii.gz"))
    return t1w, register_t1w(t1w)


def test_t1w_is_reoriented_to_ras_with_the_same_world_coordinates(tmp_path, rng):
    data = rng.random((7, 8, 9)).astype(np.float32)
    las = np.diag([-2.0, 2.0, 2.0, 1.0])
    las[:3, 3] = [10.0, -5.0, 3.0]
    nib.save(nib.Nifti1Image(data, las), tmp_path / "t1.nii.gz")
    image = load_t1w(tmp_path / "t1.nii.gz")
    assert nib.aff2axcodes(image.affine) == ("R", "A", "S")
    # voxel (0, 0, 0) of the LAS image is at x = 10 mm: in the RAS image it is the last along x
    assert np.allclose(image.affine @ [6, 0, 0, 1], las @ [0, 0, 0, 1])
    assert np.asarray(image.dataobj)[6, 0, 0] == pytest.approx(data[0, 0, 0])


def test_t1w_input_errors_name_the_file(tmp_path, rng):
    nib.save(nib.Nifti1Image(rng.random((7, 8, 9, 2)).astype(np.float32), np.eye(4)), tmp_path / "four.nii.gz")
    with pytest.raises(BIDSError, match=r"four.nii.gz: a T1w must be a 3-D image; got shape \(7, 8, 9, 2\)"):
        load_t1w(tmp_path / "four.nii.gz")
    nib.save(nib.Nifti1Image(rng.random((7, 8)).astype(np.float32), np.eye(4)), tmp_path / "two.nii.gz")
    with pytest.raises(BIDSError, match=r"two.nii.gz: a T1w must be a 3-D image"):
        load_t1w(tmp_path / "two.nii.gz")
    flat = nib.Nifti1Image(rng.random((7, 8, 9)).astype(np.float32), None)
    flat.header.set_sform(np.diag([2.0, 0.0, 2.0, 1.0]), code=1)  # a scanner header with a zero row
    flat.header.set_qform(None, code=0)
    nib.save(flat, tmp_path / "flat.nii.gz")
    with pytest.raises(BIDSError, match=r"flat.nii.gz: the affine cannot be inverted"):
        load_t1w(tmp_path / "flat.nii.gz")


def test_registration_undoes_the_synthetic_misalignment(tiny_cohort, registered):
    """Mean displacement inside the brain against the generator's transform (4 mm voxels here)."""
    _, result = registered
    template = load_mni_template(2)
    truth = np.loadtxt(bids_path(tiny_cohort / TRUTH, subject="02", datatype=None, suffix="xfm", extension=".txt",
                                 from_="T1w", to=MNI_SPACE, mode="world"))
    mni = np.argwhere(template.brain_mask)[::50] @ template.affine[:3, :3].T + template.affine[:3, 3]
    inverse = np.linalg.inv(truth)
    error = np.linalg.norm(result.registration.mni_points_to_t1w(mni) - (mni @ inverse[:3, :3].T + inverse[:3, 3]),
                           axis=1)
    untouched = np.linalg.norm(mni - (mni @ inverse[:3, :3].T + inverse[:3, 3]), axis=1)
    assert untouched.mean() > 4.0  # the misalignment is real
    assert error.mean() < 2.0
    assert set(result.metrics) >= {"n4_seconds", "affine_seconds", "syn_seconds", "template_correlation"}


def test_atlas_lands_on_its_true_position_and_mask_excludes_the_scalp(tiny_cohort, registered):
    t1w, result = registered
    atlas = load_synth_atlas(tiny_cohort / TRUTH)
    labels, report = atlas_to_t1w(atlas, result.brain_mask, result.registration)
    assert report["NumberOfRegionsPresent"] == 8 and report["MissingRegions"] == []
    truth = np.loadtxt(bids_path(tiny_cohort / TRUTH, subject="02", datatype=None, suffix="xfm", extension=".txt",
                                 from_="T1w", to=MNI_SPACE, mode="world"))
    to_atlas = np.linalg.inv(atlas.affine) @ truth @ t1w.affine
    true_labels = ndimage.affine_transform(atlas.labels, to_atlas[:3, :3], to_atlas[:3, 3], output_shape=t1w.shape,
                                           order=0)
    estimated = np.asarray(labels.dataobj)
    dice = [2 * ((estimated == k) & (true_labels == k)).sum() / ((estimated == k).sum() + (true_labels == k).sum())
            for k in range(1, 9)]
    assert np.median(dice) > 0.6  # 4 mm voxels and 8 thin cortical regions: coarse but clearly right
    # The scalp (bright ring in the head model) stays out of the mask.
    mask = np.asarray(result.brain_mask.dataobj) > 0
    head = np.asarray(t1w.dataobj)
    brightest_outside = head[~mask].max()
    assert mask.sum() * 64 / 1000 == pytest.approx(1880, rel=0.15)  # the template brain mask is about 1.9 l
    assert (head[mask] > 0.6 * brightest_outside).mean() > 0.3


def test_tissue_maps_sum_to_one_inside_the_brain(registered):
    _, result = registered
    maps = tissue_maps_to_t1w(result.brain_mask, result.registration)
    total = sum(np.asarray(m.dataobj) for m in maps.values())
    mask = np.asarray(result.brain_mask.dataobj) > 0
    assert total.max() <= 1.0 + 1e-5 and np.all(total[~mask] == 0)
    wm = np.asarray(maps["WM"].dataobj)
    assert wm[mask].mean() > 0.2


def test_atlas_without_overlap_is_an_error_and_lost_regions_are_reported(tiny_cohort, registered):
    _, result = registered
    atlas = load_synth_atlas(tiny_cohort / TRUTH)
    empty = nib.Nifti1Image(np.zeros(result.brain_mask.shape, np.uint8), result.brain_mask.affine)
    with pytest.raises(BIDSError, match="no labelled voxel overlaps the brain mask"):
        atlas_to_t1w(atlas, empty, result.registration)
    labels, _ = atlas_to_t1w(atlas, result.brain_mask, result.registration)
    partial = (np.asarray(result.brain_mask.dataobj) > 0) & (np.asarray(labels.dataobj) != 3)
    _, report = atlas_to_t1w(atlas, nib.Nifti1Image(partial.astype(np.uint8), labels.affine),
                             result.registration)
    assert [m["index"] for m in report["MissingRegions"]] == [3]
    assert report["NumberOfRegionsPresent"] == 7 and len(report["RegionVolumesML"]) == 8


def test_affine_fallback_with_zero_fields_maps_like_the_affine(tiny_cohort, registered):
    """When SyN diverges the stage keeps the affine with zero displacement fields; those
    transforms must still bring the atlas onto its true position."""
    _, result = registered
    affine_only = dataclasses.replace(result.registration, warp=np.zeros_like(result.registration.warp),
                                      inverse_warp=np.zeros_like(result.registration.inverse_warp))
    template = load_mni_template(2)
    truth = np.loadtxt(bids_path(tiny_cohort / TRUTH, subject="02", datatype=None, suffix="xfm", extension=".txt",
                                 from_="T1w", to=MNI_SPACE, mode="world"))
    mni = np.argwhere(template.brain_mask)[::50] @ template.affine[:3, :3].T + template.affine[:3, 3]
    inverse = np.linalg.inv(truth)
    error = np.linalg.norm(affine_only.mni_points_to_t1w(mni) - (mni @ inverse[:3, :3].T + inverse[:3, 3]), axis=1)
    assert error.mean() < 2.5
    atlas = load_synth_atlas(tiny_cohort / TRUTH)
    _, report = atlas_to_t1w(atlas, result.brain_mask, affine_only)
    assert report["NumberOfRegionsPresent"] == 8


def test_saved_transforms_reload_to_the_same_mapping(tmp_path, registered):
    """The three files written by save() give back the registration (points and labels)."""
    _, result = registered
    files = {"affine": tmp_path / "affine.txt", "warp": tmp_path / "warp.nii.gz",
             "inverse_warp": tmp_path / "inverse.nii.gz"}
    result.registration.save(**files)
    loaded = Registration.load(**files, t1w=result.brain_mask)
    points = np.array([[0.0, -20.0, 10.0], [30.0, 10.0, -5.0]])
    assert np.allclose(loaded.mni_points_to_t1w(points), result.registration.mni_points_to_t1w(points), atol=1e-3)
    # and the points differ from the affine alone: the nonlinear part is carried through
    affine_points = points @ result.registration.affine[:3, :3].T + result.registration.affine[:3, 3]
    assert result.metrics["nonlinear"] and not np.allclose(loaded.mni_points_to_t1w(points), affine_points, atol=0.05)


def test_registration_rebuilds_dipys_map_exactly(rng):
    """Registration (and hence the saved files) maps images and points exactly as the map
    dipy's SyN returned, in both directions, on grids that differ."""
    from dipy.align import syn_registration

    static = ndimage.gaussian_filter(rng.random((24, 26, 22)), 3).astype(np.float32)
    static_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    static_affine[:3, 3] = [-24, -26, -22]
    moving_affine = np.diag([1.8, 2.2, 2.0, 1.0])
    moving_affine[:3, 3] = [-20, -30, -20]
    shift = np.eye(4)
    shift[:3, 3] = [2.0, -1.0, 1.5]
    moving = ndimage.affine_transform(static, (np.linalg.inv(static_affine) @ shift @ moving_affine)[:3, :3],
                                      (np.linalg.inv(static_affine) @ shift @ moving_affine)[:3, 3],
                                      output_shape=(22, 20, 24)).astype(np.float32)
    _, mapping = syn_registration(moving, static, moving_affine=moving_affine, static_affine=static_affine,
                                  prealign=np.linalg.inv(shift), level_iters=[5, 5])
    registration = Registration.from_dipy(mapping, nib.Nifti1Image(moving, moving_affine))
    rebuilt = registration.mapping()
    assert np.abs(registration.warp).max() > 0.01  # a real nonlinear part
    assert np.allclose(rebuilt.transform(moving), mapping.transform(moving))
    assert np.allclose(registration.to_t1w(static, static_affine, interpolation="linear"),
                       mapping.transform_inverse(static))
    points = rng.uniform(-10, 10, (5, 3))
    assert np.allclose(registration.mni_points_to_t1w(points), mapping.transform_points(points))
    # the documented formula: template point x -> T1w point A (x + u(x)) at a grid point
    voxel = np.array([12, 13, 11])
    x = static_affine[:3, :3] @ voxel + static_affine[:3, 3]
    expected = registration.affine[:3, :3] @ (x + registration.warp[tuple(voxel)]) + registration.affine[:3, 3]
    assert np.allclose(registration.mni_points_to_t1w(x[None])[0], expected, atol=1e-4)
