"""Transform files in ITK's formats: ANTs itself (ANTsPy's antsApplyTransforms) must move images
with them exactly as this project's own resampling does."""

import h5py
import nibabel as nib
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from connex.anat.coreg import load_t1w_to_epi, rigid_matrix, save_t1w_to_epi, t1w_to_epi
from connex.anat.preprocess import Registration
from connex.errors import ConnexError
from connex.inputs.transforms import (
    is_itk_text,
    load_itk_affine,
    load_itk_displacements,
    save_itk_affine,
    save_itk_displacements,
)

ants = pytest.importorskip("ants")


def _grid(shape, zooms, origin, angles=(0.0, 0.0, 0.0)):
    """A RAS grid affine with orthonormal axes (rotated by ``angles``) and these voxel sizes."""
    affine = np.eye(4)
    affine[:3, :3] = rigid_matrix(np.array([0, 0, 0, *angles]), np.zeros(3))[:3, :3] @ np.diag(zooms)
    affine[:3, 3] = origin
    return shape, affine


def _smooth(shape, rng, sigma=3.0, scale=10.0):
    """Smooth noise with standard deviation ``scale``."""
    noise = gaussian_filter(rng.standard_normal(shape), sigma)
    return (noise / noise.std() * scale).astype(np.float32)


def _ants_image(data, affine, path):
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine), path)
    return ants.image_read(str(path))


def assert_same_resampling(ours, theirs, moving, moving_affine, tmp_path):
    """``ours(data)`` and ``theirs(ants_image)`` (the same resampling by this project and by
    ANTs) agree on ``moving`` wherever both sample inside the moving grid (an image of ones stays
    1 there; at the edge dipy and ITK treat the last half voxel differently)."""
    ones = np.ones_like(moving)
    valid = (ours(ones) > 0.999) & (theirs(_ants_image(ones, moving_affine, tmp_path / "ones.nii.gz")) > 0.999)
    assert valid.mean() > 0.3
    mine, ants_result = ours(moving), theirs(_ants_image(moving, moving_affine, tmp_path / "moving.nii.gz"))
    difference = np.abs(ants_result - mine)[valid]  # values 100 +- 10
    assert np.median(difference) < 1e-3 and np.percentile(difference, 99) < 0.05 and difference.max() < 0.5
    return mine, ants_result, valid


def make_registration():
    """A registration with an affine that shears and scales and two unrelated smooth fields
    (each file is checked on its own), between an axial template grid and a rotated T1w grid."""
    rng = np.random.default_rng(3)
    template_shape, template_affine = _grid((30, 34, 28), (2.0, 2.0, 2.0), (-30.0, -40.0, -24.0))
    t1w_shape, t1w_affine = _grid((40, 44, 36), (1.5, 1.6, 1.7), (-28.0, -36.0, -30.0), angles=(0.1, -0.05, 0.15))
    affine = rigid_matrix(np.array([2.0, -3.0, 1.5, 0.05, 0.08, -0.06]), np.array([0.0, -5.0, 0.0]))
    affine[:3, :3] = affine[:3, :3] @ np.array([[1.05, 0.03, 0.0], [0.0, 0.97, 0.02], [0.01, 0.0, 1.02]])
    # zero near the grid's edge, as registration fields are (there dipy and ITK extend a field differently)
    taper = np.ones(template_shape, np.float32)
    for axis, n in enumerate(template_shape):
        ramp = np.clip((np.minimum(np.arange(n), n - 1 - np.arange(n)) - 2) / 4, 0, 1)
        taper *= ramp.reshape([-1 if a == axis else 1 for a in range(3)])
    warp = np.stack([_smooth(template_shape, rng, scale=1.5) * taper for _ in range(3)], axis=-1)
    inverse_warp = np.stack([_smooth(template_shape, rng, scale=1.5) * taper for _ in range(3)], axis=-1)
    assert 1.0 < np.abs(warp).max() < 10.0  # displacements of a few mm
    return Registration(affine=affine, warp=warp, inverse_warp=inverse_warp, template_affine=template_affine,
                        t1w_shape=t1w_shape, t1w_affine=t1w_affine)


@pytest.fixture
def registration():
    return make_registration()


def _files(registration, tmp_path):
    files = {"affine": tmp_path / "from-T1w_to-MNI_desc-affine_xfm.txt",
             "warp": tmp_path / "from-T1w_to-MNI_desc-warp_xfm.nii.gz",
             "inverse_warp": tmp_path / "from-MNI_to-T1w_desc-warp_xfm.nii.gz"}
    registration.save(**files)
    return files


def test_ants_moves_the_t1w_onto_the_template_as_the_registration_does(registration, tmp_path):
    files = _files(registration, tmp_path)
    template_shape = registration.warp.shape[:3]
    fixed = _ants_image(np.zeros(template_shape), registration.template_affine, tmp_path / "template.nii.gz")

    def ours(data):
        return registration.mapping().transform(data, interpolation="linear",
                                                image_world2grid=np.linalg.inv(registration.t1w_affine),
                                                out_shape=np.asarray(template_shape, dtype=np.int32),
                                                out_grid2world=registration.template_affine)

    def theirs(moving, transforms=(files["warp"], files["affine"])):
        # antsApplyTransforms -r MNI -i T1w -t warp -t affine (points go through the warp first)
        return ants.apply_transforms(fixed=fixed, moving=moving, transformlist=[str(t) for t in transforms],
                                     interpolator="linear").numpy()

    t1w = _smooth(registration.t1w_shape, np.random.default_rng(0), sigma=2.5) + 100
    mine, _, valid = assert_same_resampling(ours, theirs, t1w, registration.t1w_affine, tmp_path)
    # the warp and the order matter: without the warp, or in the other order, ANTs lands elsewhere
    for transforms in ([files["affine"]], [files["affine"], files["warp"]]):
        other = theirs(_ants_image(t1w, registration.t1w_affine, tmp_path / "moving.nii.gz"), transforms)
        assert np.median(np.abs(other - mine)[valid]) > 0.2


def test_ants_moves_template_images_onto_the_t1w_as_the_registration_does(registration, tmp_path):
    files = _files(registration, tmp_path)
    fixed = _ants_image(np.zeros(registration.t1w_shape), registration.t1w_affine, tmp_path / "t1w.nii.gz")
    # ANTsPy inverts only files named .mat: ANTs itself rewrites the text affine as one
    affine = tmp_path / "affine.mat"
    ants.write_transform(ants.read_transform(str(files["affine"]), precision="double"), str(affine))

    def ours(data):
        return registration.to_t1w(data, registration.template_affine, interpolation="linear")

    def theirs(moving):
        # antsApplyTransforms -r T1w -i MNI -t [affine,1] -t inverse_warp
        transforms = [str(affine), str(files["inverse_warp"])]
        return ants.apply_transforms(fixed=fixed, moving=moving, transformlist=transforms,
                                     whichtoinvert=[True, False], interpolator="linear").numpy()

    template = _smooth(registration.warp.shape[:3], np.random.default_rng(1), sigma=2.5) + 100
    assert_same_resampling(ours, theirs, template, registration.template_affine, tmp_path)


def test_the_files_read_back_exactly_and_earlier_versions_files_still_read(registration, tmp_path):
    files = _files(registration, tmp_path)
    assert files["affine"].read_text().startswith("#Insight Transform File V1.0\n")
    assert nib.load(files["warp"]).shape == (*registration.warp.shape[:3], 1, 3)  # ITK's 5-D layout
    loaded = Registration.load(**files, t1w=nib.Nifti1Image(np.zeros(registration.t1w_shape), registration.t1w_affine))
    np.testing.assert_allclose(loaded.affine, registration.affine, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(loaded.warp, registration.warp)
    np.testing.assert_array_equal(loaded.inverse_warp, registration.inverse_warp)
    np.testing.assert_array_equal(loaded.template_affine, registration.template_affine)
    # the previous format: a plain 4x4 RAS matrix, 4-D RAS fields
    old = {k: tmp_path / f"old_{p.name}" for k, p in files.items()}
    np.savetxt(old["affine"], registration.affine, fmt="%.10g")
    for key in ("warp", "inverse_warp"):
        nib.save(nib.Nifti1Image(getattr(registration, key), registration.template_affine), old[key])
    legacy = Registration.load(**old, t1w=nib.Nifti1Image(np.zeros(registration.t1w_shape), registration.t1w_affine))
    np.testing.assert_allclose(legacy.affine, registration.affine, rtol=0, atol=1e-8)
    np.testing.assert_array_equal(legacy.warp, registration.warp)
    np.testing.assert_array_equal(legacy.inverse_warp, registration.inverse_warp)
    # an ITK file with a byte-order mark and blank lines first is still ITK (not read as a plain matrix)
    padded = tmp_path / "padded.txt"
    padded.write_text("\ufeff\n  " + files["affine"].read_text(), encoding="utf-8")
    assert is_itk_text(padded)
    np.testing.assert_allclose(load_itk_affine(padded), registration.affine, rtol=0, atol=1e-12)
    # a plain matrix that is not a 4x4 affine names the file
    np.savetxt(tmp_path / "three.txt", np.eye(3))
    with pytest.raises(ConnexError, match="three.txt: expected an ITK text transform or a plain 4x4 affine"):
        Registration.load(**{**old, "affine": tmp_path / "three.txt"},
                          t1w=nib.Nifti1Image(np.zeros(registration.t1w_shape), registration.t1w_affine))


@pytest.mark.parametrize("grid", ["axial", "oblique"])
def test_ants_reads_each_composite_h5_as_its_list_of_files(registration, tmp_path, grid):
    """The ITK composite .h5 of each direction moves images as the registration does (ANTs reads
    it alone, -t file), on an axial and an oblique template grid; for T1w -> MNI it holds the
    numbers ANTs' own composite writer gives for -t warp -t affine."""
    from dataclasses import replace

    if grid == "oblique":
        _, oblique = _grid(registration.warp.shape[:3], (2.0, 2.1, 1.9), (-31.0, -38.0, -25.0),
                           angles=(0.12, -0.2, 0.07))
        registration = replace(registration, template_affine=oblique)
    files = _files(registration, tmp_path)
    composite, inverse = tmp_path / "from-T1w_to-MNI_xfm.h5", tmp_path / "from-MNI_to-T1w_xfm.h5"
    registration.save_composites(composite=composite, inverse_composite=inverse)
    template_shape = registration.warp.shape[:3]
    template = _ants_image(np.zeros(template_shape), registration.template_affine, tmp_path / "template.nii.gz")
    t1w = _ants_image(np.zeros(registration.t1w_shape), registration.t1w_affine, tmp_path / "t1w.nii.gz")

    def to_template(data):
        return registration.mapping().transform(data, interpolation="linear",
                                                image_world2grid=np.linalg.inv(registration.t1w_affine),
                                                out_shape=np.asarray(template_shape, dtype=np.int32),
                                                out_grid2world=registration.template_affine)

    def ants_to_template(moving):
        return ants.apply_transforms(fixed=template, moving=moving, transformlist=[str(composite)],
                                     interpolator="linear").numpy()

    def to_t1w(data):
        return registration.to_t1w(data, registration.template_affine, interpolation="linear")

    def ants_to_t1w(moving):
        return ants.apply_transforms(fixed=t1w, moving=moving, transformlist=[str(inverse)],
                                     interpolator="linear").numpy()

    rng = np.random.default_rng(0)
    assert_same_resampling(to_template, ants_to_template, _smooth(registration.t1w_shape, rng, sigma=2.5) + 100,
                           registration.t1w_affine, tmp_path)
    assert_same_resampling(to_t1w, ants_to_t1w, _smooth(template_shape, rng, sigma=2.5) + 100,
                           registration.template_affine, tmp_path)
    reference = tmp_path / "ants_composite.h5"
    ants.write_transform(ants.compose_ants_transforms([
        ants.transform_from_displacement_field(ants.image_read(str(files["warp"]))),
        ants.read_transform(str(files["affine"]), precision="float")]), str(reference))
    with h5py.File(composite) as ours, h5py.File(reference) as theirs:
        for number in ("0", "1", "2"):
            kind = f"TransformGroup/{number}/TransformType"
            assert ours[kind][0] == theirs[kind][0]
        for number in ("1", "2"):
            for name in ("TransformParameters", "TransformFixedParameters"):
                np.testing.assert_allclose(ours[f"TransformGroup/{number}/{name}"][()],
                                           theirs[f"TransformGroup/{number}/{name}"][()], rtol=0, atol=1e-6)


def test_ants_moves_t1w_images_onto_the_epi_grid_as_the_coregistration_does(tmp_path):
    t1w_shape, t1w_affine = _grid((40, 44, 36), (1.5, 1.5, 1.5), (-30.0, -33.0, -27.0))
    epi_shape, epi_affine = _grid((24, 26, 20), (2.5, 2.5, 3.0), (-29.0, -31.0, -25.0), angles=(0.2, 0.0, -0.1))
    t1w_to_epi_world = rigid_matrix(np.array([1.5, -2.0, 3.0, 0.04, -0.07, 0.1]), np.array([0.0, 0.0, 5.0]))
    xfm = save_t1w_to_epi(t1w_to_epi_world, tmp_path / "from-T1w_to-bold_xfm.txt")
    np.testing.assert_allclose(load_t1w_to_epi(xfm), t1w_to_epi_world, rtol=0, atol=1e-12)
    fixed = _ants_image(np.zeros(epi_shape), epi_affine, tmp_path / "epi.nii.gz")

    def ours(data):
        return t1w_to_epi(nib.Nifti1Image(data, t1w_affine), t1w_to_epi_world, epi_shape, epi_affine,
                          interpolation="linear")

    def theirs(moving):  # antsApplyTransforms -r EPI -i T1w -t xfm
        return ants.apply_transforms(fixed=fixed, moving=moving, transformlist=[str(xfm)],
                                     interpolator="linear").numpy()

    assert_same_resampling(ours, theirs, _smooth(t1w_shape, np.random.default_rng(2), sigma=2.5) + 100, t1w_affine,
                           tmp_path)
    # earlier versions' plain matrix (M itself) reads as the same M
    np.savetxt(tmp_path / "old.txt", t1w_to_epi_world, fmt="%.10g")
    np.testing.assert_allclose(load_t1w_to_epi(tmp_path / "old.txt"), t1w_to_epi_world, rtol=0, atol=1e-8)


def test_labels_come_onto_the_epi_grid_as_dipys_nearest_neighbour_puts_them():
    """The label resampling (``nearest_on_grid``, no dipy import) gives dipy's AffineMap nearest
    neighbour voxel for voxel: an oblique EPI grid half outside the T1w grid, and a grid
    shifted by exactly half a voxel (ties round down in both)."""
    from dipy.align.imaffine import AffineMap

    t1w_shape, t1w_affine = _grid((30, 34, 28), (1.0, 1.2, 1.1), (-15.0, -20.0, -14.0))
    labels = np.random.default_rng(3).integers(0, 90, size=t1w_shape).astype(np.int32)
    half = np.eye(4)
    half[:3, 3] = 0.5
    resampled = []
    for epi_shape, epi_affine, t1w_to_epi_world in (
            (_grid((26, 22, 20), (2.5, 2.0, 3.0), (-28.0, -24.0, -22.0), angles=(0.3, -0.2, 0.4))
             + (rigid_matrix(np.array([3.0, -2.0, 4.0, 0.1, -0.05, 0.2]), np.zeros(3)),)),
            (t1w_shape, t1w_affine @ half, np.eye(4))):
        ours = t1w_to_epi(nib.Nifti1Image(labels, t1w_affine), t1w_to_epi_world, epi_shape, epi_affine,
                          interpolation="nearest")
        theirs = AffineMap(t1w_to_epi_world, domain_grid_shape=t1w_shape, domain_grid2world=t1w_affine,
                           codomain_grid_shape=epi_shape, codomain_grid2world=epi_affine).transform_inverse(
            labels, interpolation="nearest")
        assert ours.shape == tuple(epi_shape) and ours.dtype == np.int32
        np.testing.assert_array_equal(ours, theirs)
        resampled.append(ours)
    oblique, shifted = resampled
    assert 0.5 < np.mean(oblique == 0) < 0.95  # a larger grid: partly outside the T1w grid
    # half a voxel further on: each voxel reads its own label (halves round down); the last one is outside
    np.testing.assert_array_equal(shifted[:-1, :-1, :-1], labels[:-1, :-1, :-1])
    assert not shifted[-1].any() and not shifted[:, -1].any() and not shifted[:, :, -1].any()


def test_itk_files_from_ants_read_with_their_centre_and_bad_files_name_themselves(tmp_path):
    """ANTs writes a rotation centre (FixedParameters) and float variants: the same map."""
    matrix = rigid_matrix(np.array([4.0, -1.0, 2.0, 0.1, 0.2, -0.1]), np.zeros(3))
    save_itk_affine(matrix, tmp_path / "a.txt")
    transform = ants.read_transform(str(tmp_path / "a.txt"))
    point = np.array([10.0, -20.0, 30.0])  # RAS; ANTs works in LPS
    lps = np.array(transform.apply_to_point([-point[0], -point[1], point[2]]))
    np.testing.assert_allclose([-lps[0], -lps[1], lps[2]], (matrix @ [*point, 1])[:3], atol=1e-9)
    centre = np.array([5.0, 7.0, -3.0])  # LPS
    lps_matrix = np.diag([-1, -1, 1, 1.0]) @ matrix @ np.diag([-1, -1, 1, 1.0])
    translation = lps_matrix[:3, 3] - centre + lps_matrix[:3, :3] @ centre  # t with M (x - c) + t + c
    numbers = " ".join(f"{v:.17g}" for v in [*lps_matrix[:3, :3].ravel(), *translation])
    (tmp_path / "b.txt").write_text("#Insight Transform File V1.0\n#Transform 0\nTransform: "
                                    f"MatrixOffsetTransformBase_double_3_3\nParameters: {numbers}\n"
                                    f"FixedParameters: {' '.join(map(str, centre))}\n")
    np.testing.assert_allclose(load_itk_affine(tmp_path / "b.txt"), matrix, atol=1e-9)
    (tmp_path / "c.txt").write_text("#Insight Transform File V1.0\n#Transform 0\nTransform: "
                                    "BSplineTransform_double_3_3\nParameters: 1 2\nFixedParameters: 0\n")
    with pytest.raises(ConnexError, match="c.txt: expected one ITK affine"):
        load_itk_affine(tmp_path / "c.txt")
    (tmp_path / "f.txt").write_text("#Insight Transform File V1.0\n#Transform 0\n"
                                    "Transform: AffineTransform_double_3_3\nFixedParameters: 0 0 0\n")
    with pytest.raises(ConnexError, match="f.txt: an ITK transform needs a 'Parameters:' line"):
        load_itk_affine(tmp_path / "f.txt")
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 2), np.float32), np.eye(4)), tmp_path / "d.nii.gz")
    with pytest.raises(ConnexError, match="d.nii.gz: expected a 3-D displacement field"):
        load_itk_displacements(tmp_path / "d.nii.gz")
    field = np.random.default_rng(0).standard_normal((4, 5, 6, 3)).astype(np.float32)
    save_itk_displacements(field, np.eye(4), tmp_path / "e.nii.gz")
    np.testing.assert_array_equal(load_itk_displacements(tmp_path / "e.nii.gz")[0], field)
