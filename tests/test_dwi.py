"""DWI loading, checks and preprocessing, on small hand-made series with a known answer."""

from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest

from connex.errors import BIDSError
from connex.structural.preprocess import DWISeries, combine_runs, correct_motion, fit_tensor, fsl_bvecs, load_dwi

D_AXIAL, D_RADIAL = 1.7e-3, 0.3e-3


def _directions(n: int) -> np.ndarray:
    """n roughly uniform unit vectors (Fibonacci sphere, half of it)."""
    k = np.arange(n) + 0.5
    z = k / n
    phi = np.pi * (1 + 5**0.5) * k
    r = np.sqrt(1 - z**2)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _fibre_signal(fibre_world: np.ndarray, world_bvecs: np.ndarray, bvals: np.ndarray) -> np.ndarray:
    cos2 = (world_bvecs @ fibre_world) ** 2
    return 1000.0 * np.exp(-bvals * (D_RADIAL + (D_AXIAL - D_RADIAL) * cos2))


def _write_series(folder, name, affine, fibre_world, shape=(10, 9, 8), n_dirs=20):
    """A uniform single-fibre DWI series stored with ``affine``; b-vectors in BIDS/FSL convention."""
    bvals = np.r_[0.0, np.full(n_dirs, 1000.0)]
    world = np.vstack([[0, 0, 0], _directions(n_dirs)])
    rotation = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    voxel = world @ rotation  # world direction -> voxel axes
    fsl = voxel.copy()
    if np.linalg.det(affine[:3, :3]) > 0:
        fsl[:, 0] *= -1
    data = np.broadcast_to(_fibre_signal(fibre_world, world, bvals), shape + (len(bvals),)).astype(np.float32)
    path = folder / f"{name}_dwi.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    np.savetxt(folder / f"{name}_dwi.bval", bvals[None], fmt="%g")
    np.savetxt(folder / f"{name}_dwi.bvec", fsl.T, fmt="%.6f")
    return path


@pytest.mark.parametrize("orientation", ["LAS", "RAS", "LPI"])
def test_fibre_direction_survives_reorientation_and_the_fsl_convention(tmp_path, orientation):
    """An oblique fibre (right-anterior, 45 degrees) must come out along the same direction in
    the voxel axes of the RAS image, whatever the stored orientation (FSL flips x for
    positive-determinant images; a sign error would give left-anterior)."""
    signs = {"LAS": [-2, 2, 2], "RAS": [2, 2, 2], "LPI": [-2, -2, -2]}[orientation]
    affine = np.diag(signs + [1.0])
    path = _write_series(tmp_path, "sub-01", affine, fibre_world=np.array([1.0, 1.0, 0.0]) / np.sqrt(2))
    series = load_dwi(path)
    assert nib.aff2axcodes(series.affine) == ("R", "A", "S")
    fa = fit_tensor(series, np.ones(series.data.shape[:3], bool), b0_threshold=50)["FA"]
    from dipy.reconst.dti import TensorModel

    evec = TensorModel(series.gradient_table(50)).fit(series.data[4, 4, 4]).evecs[:, 0]
    assert abs(evec @ np.array([1.0, 1.0, 0.0]) / np.sqrt(2)) > 0.99
    assert fa[4, 4, 4] == pytest.approx(0.80, abs=0.02)  # eigenvalues (1.7, 0.3, 0.3) x 1e-3
    # written back, the b-vectors are in the FSL convention of the RAS image
    assert np.allclose(fsl_bvecs(series)[0, 1:], -series.bvecs[1:, 0])


def test_dwi_input_errors_name_the_file_and_the_problem(tmp_path):
    affine = np.diag([-2.0, 2, 2, 1])
    path = _write_series(tmp_path, "sub-01", affine, np.array([1.0, 0, 0]))
    bvec = tmp_path / "sub-01_dwi.bvec"
    bval = tmp_path / "sub-01_dwi.bval"
    good_bvec, good_bval = bvec.read_text(), bval.read_text()

    vectors = np.loadtxt(bvec)
    vectors[:, 3] *= 2
    np.savetxt(bvec, vectors)
    with pytest.raises(BIDSError,
                       match=r"sub-01_dwi.nii.gz: the .bvec vectors .* must have unit length.*volumes \[3\]"):
        load_dwi(path)
    np.savetxt(bvec, vectors[:2])
    with pytest.raises(BIDSError, match=r"sub-01_dwi.bvec: expected 3 rows"):
        load_dwi(path)
    bvec.write_text(good_bvec)

    bval.write_text(" ".join(["0"] * 21))
    with pytest.raises(BIDSError, match=r"sub-01_dwi.nii.gz: only b=0 volumes"):
        load_dwi(path)
    bval.write_text(" ".join(["0"] * 20))
    with pytest.raises(BIDSError, match=r"21 volumes, but sub-01_dwi.bval has 20 values"):
        load_dwi(path)
    bval.write_text(good_bval)

    image = nib.load(path)
    data = image.get_fdata(dtype=np.float32)
    data[1, 2, 3, 4] = np.nan
    nib.save(nib.Nifti1Image(data, affine), path)
    with pytest.raises(BIDSError, match=r"sub-01_dwi.nii.gz: 1 NaN or infinite voxel values"):
        load_dwi(path)
    nib.save(nib.Nifti1Image(data[..., 0], affine), path)
    with pytest.raises(BIDSError, match=r"sub-01_dwi.nii.gz: a DWI series must be 4-D"):
        load_dwi(path)


def _blob_series(rng, shape=(28, 30, 26)) -> DWISeries:
    """A smooth random 'head' with one b=0 and six weighted volumes (contrast varies)."""
    from scipy import ndimage

    base = ndimage.gaussian_filter(rng.random(shape), 2.5)
    base = (base - base.min()) / np.ptp(base)
    volumes = [base] + [base * (0.6 + 0.05 * k) + 0.02 * ndimage.gaussian_filter(rng.random(shape), 1)
                        for k in range(6)]
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = -np.array(shape) + 1
    return DWISeries(data=np.stack(volumes, axis=3).astype(np.float32), affine=affine,
                     bvals=np.r_[0.0, np.full(6, 1000.0)], bvecs=np.vstack([[0, 0, 0], np.eye(3), np.eye(3)]),
                     source="blob")


def _rigid(angle_deg: float, axis: int, translation) -> np.ndarray:
    theta = np.radians(angle_deg)
    c, s = np.cos(theta), np.sin(theta)
    i, j = [a for a in range(3) if a != axis]
    matrix = np.eye(4)
    matrix[i, i], matrix[i, j], matrix[j, i], matrix[j, j] = c, -s, s, c
    matrix[:3, 3] = translation
    return matrix


def _move(series: DWISeries, volume: int, reference_to_moved: np.ndarray) -> DWISeries:
    from dipy.align.imaffine import AffineMap

    shape = series.data.shape[:3]
    mapping = AffineMap(np.linalg.inv(reference_to_moved), domain_grid_shape=shape, domain_grid2world=series.affine,
                        codomain_grid_shape=shape, codomain_grid2world=series.affine)
    data = series.data.copy()
    data[..., volume] = mapping.transform(series.data[..., volume])
    return replace(series, data=data)


def test_motion_correction_recovers_a_known_rotation_and_rotates_the_bvector(rng):
    series = _blob_series(rng)
    moved = _move(series, 2, _rigid(4.0, 2, [1.5, 0.0, 0.0]))  # volume 2 (b-vector along y) moved
    corrected, motion = correct_motion(moved, b0_threshold=50)
    assert motion[2, 0] == pytest.approx(1.5, abs=0.3)
    assert np.degrees(motion[2, 5]) == pytest.approx(4.0, abs=0.7)
    assert np.abs(motion[[1, 3, 4, 5, 6]]).max() < 0.3
    # the head turned +4 degrees about z while the gradient stayed put: seen from the head, the
    # gradient turned -4 degrees, so y tilts towards +x
    angle = np.degrees(np.arctan2(corrected.bvecs[2, 0], corrected.bvecs[2, 1]))
    assert angle == pytest.approx(4.0, abs=0.7)
    inside = (slice(6, -6),) * 3 + (2,)  # away from the edges the motion moved out of view
    error_before = np.abs(moved.data[inside] - series.data[inside]).mean()
    error_after = np.abs(corrected.data[inside] - series.data[inside]).mean()
    assert error_after < 0.5 * error_before


def test_runs_are_aligned_and_concatenated(rng):
    first = _blob_series(rng)
    shifted = _rigid(0, 2, [3.0, -2.0, 0.0])
    second = first
    for volume in range(first.data.shape[3]):
        second = _move(second, volume, shifted)
    combined, transforms = combine_runs([first, second], b0_threshold=50)
    assert combined.data.shape[3] == 14 and len(combined.bvals) == 14
    assert np.allclose(transforms[1][:3, 3], [3.0, -2.0, 0.0], atol=0.4)
    assert np.allclose(combined.bvecs[7:], first.bvecs, atol=0.02)  # a translation does not turn them
    inside = (slice(5, -5),) * 3
    assert np.abs(combined.data[inside + (7,)] - first.data[inside + (0,)]).mean() < 0.02


def test_denoising_keeps_every_volume_in_place_and_its_scale(tiny_cohort):
    """With b=0 volumes first and last (as in the synthetic and many real series), each denoised
    volume must still resemble its own input and keep its intensity (dipy's Patch2Self failed
    both: version 3 scrambled the last volumes, version 1 changed the b=0 / weighted ratio)."""
    from connex.structural.preprocess import denoise

    series = load_dwi(tiny_cohort / "sub-01" / "dwi" / "sub-01_dwi.nii.gz")
    assert series.is_b0(50)[0] and series.is_b0(50)[-1]
    denoised = denoise(series, "mppca", b0_threshold=50).data
    inside = series.data[..., 0] > np.percentile(series.data[..., 0], 60)
    before = series.data[inside]
    after = denoised[inside]
    correlation = np.corrcoef(after.T, before.T)[: before.shape[1], before.shape[1]:]  # denoised x original
    assert np.diag(correlation).min() > 0.8
    assert np.allclose(after.mean(axis=0), before.mean(axis=0), rtol=0.03)


@pytest.mark.parametrize("algorithm", ["deterministic", "probabilistic"])
def test_tracking_is_reproducible_with_its_seed_and_follows_the_fibre(tmp_path, caplog, algorithm):
    """A uniform fibre along world x: streamlines run along x; the same seed gives the same
    streamlines, another seed other ones (probabilistic tracking and the seed points); two threads
    and small seed batches give the same streamlines, with one progress line per batch."""
    import logging

    from connex.structural.tracking import TrackingParams, fit_fodf, track

    path = _write_series(tmp_path, "sub-01", np.diag([-2.0, 2, 2, 1]), np.array([1.0, 0, 0]), shape=(20, 8, 8),
                         n_dirs=30)
    series = load_dwi(path)
    mask = np.ones(series.data.shape[:3], bool)
    fa = fit_tensor(series, mask, b0_threshold=50)["FA"].astype(float)
    shm, _ = fit_fodf(series.data, series.gradient_table(50), mask, "csa")
    params = TrackingParams(algorithm=algorithm, seeds_per_voxel=1, min_length_mm=10, random_seed=3)
    first, figures = track(shm, fa, mask, series.affine, params)
    again, _ = track(shm, fa, mask, series.affine, params)
    other, _ = track(shm, fa, mask, series.affine, TrackingParams(**{**params.as_dict(), "random_seed": 4}))
    caplog.clear()  # only the batched run's lines (another test may have left INFO logging on)
    with caplog.at_level(logging.INFO, logger="connex.structural.tracking"):
        batched, _ = track(shm, fa, mask, series.affine, params, threads=2, seed_batch=300)
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Tracking: ")]
    assert len(progress) == int(np.ceil(figures["seeds"] / 300))
    assert f"{figures['seeds']}/{figures['seeds']} seeds" in progress[-1]
    assert figures["streamlines_kept"] > 100 and all(s.dtype == np.float32 for s in first)
    lengths = [np.linalg.norm(np.diff(s, axis=0), axis=1).sum() for s in first]
    assert min(lengths) >= params.min_length_mm - 1e-3  # float32 points
    assert len(first) == len(again) and all(np.array_equal(a, b) for a, b in zip(first, again))
    assert len(first) == len(batched) and all(np.array_equal(a, b) for a, b in zip(first, batched))
    assert not all(len(a) == len(b) and np.allclose(a, b) for a, b in zip(first, other))
    directions = np.concatenate([np.diff(s, axis=0) for s in first])
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    assert np.median(np.abs(directions[:, 0])) > (0.95 if algorithm == "deterministic" else 0.8)  # CSA is broad


def test_fodf_fitted_only_where_tracking_reaches_gives_the_same_streamlines(tmp_path):
    """With FA stopping, fitting the fODF in the voxels at or above the threshold and their
    neighbours (fodf_region) gives exactly the streamlines of a fit in the whole mask."""
    from connex.structural.tracking import TrackingParams, fit_fodf, fodf_region, track

    path = _write_series(tmp_path, "sub-01", np.diag([-2.0, 2, 2, 1]), np.array([1.0, 0, 0]), shape=(20, 8, 8),
                         n_dirs=30)
    series = load_dwi(path)
    mask = np.ones(series.data.shape[:3], bool)
    fa = fit_tensor(series, mask, b0_threshold=50)["FA"].astype(float)
    fa[12:] = 0.05  # no fibre beyond x = 12: streamlines stop there
    fa[:, :2] = 0.05
    params = TrackingParams(algorithm="deterministic", seeds_per_voxel=2, min_length_mm=4, random_seed=3)
    region = fodf_region(fa, mask, params)
    assert region[:13, 1:].all() and not region[13:].any() and not region[:, 0].any()
    full, _ = fit_fodf(series.data, series.gradient_table(50), mask, "csd")
    part, _ = fit_fodf(series.data, series.gradient_table(50), region, "csd")
    assert not np.array_equal(full.dense(), part.dense())  # the fits differ outside the region...
    first, figures = track(full, fa, mask, series.affine, params)
    second, _ = track(part, fa, mask, series.affine, params)
    assert figures["streamlines_kept"] > 50  # ...the streamlines do not
    assert len(first) == len(second) and all(np.array_equal(a, b) for a, b in zip(first, second))
    assert fodf_region(fa, mask, replace(params, stopping="cmc")) is mask


def _crossing_volume(rng, shape=(23, 22, 21), n_dirs=32):
    """A volume (X, Y, Z, 1 + n_dirs) of one or two fibres per voxel in random directions, with
    random diffusivities (FA from about 0.3 to 0.9) and noise, and its b-values and b-vectors."""
    bvals = np.r_[0.0, np.full(n_dirs, 1000.0)]
    bvecs = np.vstack([[0, 0, 0], _directions(n_dirs)])
    n = int(np.prod(shape))
    first, second = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in rng.normal(size=(2, n, 3)))
    radial = rng.uniform(0.1e-3, 0.7e-3, n)[:, None]
    signal = lambda fibre: np.exp(-bvals * (radial + (D_AXIAL - radial) * (fibre @ bvecs.T) ** 2))  # noqa: E731
    two = (rng.random(n) < 0.4)[:, None]
    data = 1000.0 * np.where(two, 0.5 * (signal(first) + signal(second)), signal(first))
    data += rng.normal(0, 20, data.shape)
    return np.abs(data).reshape(shape + (len(bvals),)).astype(np.float32), bvals, bvecs


def test_fodf_fitted_in_chunks_is_dipys_whole_fit(monkeypatch):
    """The tractography job's fODF (single-fibre response on the central box with a chunked tensor
    fit, coefficients fitted FIT_CHUNK voxels at a time) is exactly dipy's auto_response_ssst and
    whole-mask fit."""
    from dipy.core.gradients import gradient_table
    from dipy.reconst.csdeconv import ConstrainedSphericalDeconvModel, auto_response_ssst
    from dipy.reconst.shm import CsaOdfModel

    import connex.structural.preprocess as preprocess
    import connex.structural.tracking as tracking

    data, bvals, bvecs = _crossing_volume(np.random.default_rng(5))
    gtab = gradient_table(bvals, bvecs=bvecs, b0_threshold=50)
    mask = np.random.default_rng(6).random(data.shape[:3]) > 0.3
    (response, s0), ratio = auto_response_ssst(gtab, data, roi_radii=10, fa_thr=0.7)
    monkeypatch.setattr(preprocess, "TENSOR_FIT_CHUNK", 97)  # the box's 9,261 voxels in many chunks
    monkeypatch.setattr(tracking, "FIT_CHUNK", 333)
    (ours, our_s0), our_ratio = tracking.single_fibre_response(gtab, data)
    assert 0.1 < ratio < 0.6  # single-fibre voxels were found: not dipy's fallback
    np.testing.assert_allclose(ours, response, rtol=1e-6)
    assert our_s0 == pytest.approx(s0, rel=1e-6) and our_ratio == pytest.approx(ratio, rel=1e-6)
    for model, reference in [("csd", ConstrainedSphericalDeconvModel(gtab, ((response, s0)), sh_order_max=6)),
                             ("csa", CsaOdfModel(gtab, sh_order_max=6))]:
        fodf, details = tracking.fit_fodf(data, gtab, mask, model)
        assert details["sh_order"] == 6 and fodf.coefficients.shape == (mask.sum(), 28)
        whole = reference.fit(data, mask=mask).shm_coeff
        np.testing.assert_allclose(fodf.dense(np.float64), whole, rtol=1e-5, atol=1e-6 * np.abs(whole).max())
        assert np.abs(whole[mask]).min(axis=1).max() > 0  # fitted where the mask is: not a zero field


def test_tractography_job_streams_the_tractogram_and_writes_nothing_without_streamlines(tmp_path):
    """run_tractography writes, batch by batch, the streamlines track() returns; with no seed voxel
    it stops with the file and the reason, and leaves no tractogram or sidecar."""
    from connex.structural.stage import run_tractography
    from connex.structural.tracking import TrackingParams, fit_fodf, load_tractogram, track

    affine = np.diag([2.0, 2, 2, 1])  # RAS, as the preprocessing writes it
    path = _write_series(tmp_path, "sub-01", affine, np.array([1.0, 0, 0]), shape=(20, 8, 7), n_dirs=30)
    series = load_dwi(path)
    mask = np.ones(series.data.shape[:3], bool)
    fa = fit_tensor(series, mask, b0_threshold=50)["FA"].astype(np.float32)
    maps = {}
    for name, value in (("mask", mask.astype(np.uint8)), ("fa", fa)):
        maps[name] = str(tmp_path / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(value, affine), maps[name])
    params = TrackingParams(model="csa", seeds_per_voxel=1, min_length_mm=10, random_seed=3)
    files = {"dwi": str(path), "bval": str(path).replace(".nii.gz", ".bval"),
             "bvec": str(path).replace(".nii.gz", ".bvec"), "mask": maps["mask"], "fa": maps["fa"],
             "tissue_maps": {}, "b0_threshold": 50}
    metrics = run_tractography(**files, tractogram=str(tmp_path / "t.trk"), sidecar=str(tmp_path / "t.json"),
                               params=params, seed_batch=150)  # several batches, each written as it comes
    expected, figures = track(fit_fodf(series.data, series.gradient_table(50), mask, "csa")[0], fa.astype(float),
                              mask, affine, params)
    written = load_tractogram(tmp_path / "t.trk")
    assert figures["seeds"] > 4 * 150
    assert metrics["streamlines_kept"] == figures["streamlines_kept"] == len(written) > 50
    assert all(np.allclose(a, b, atol=1e-4) for a, b in zip(written, expected))
    assert 0 < metrics["tracking_seconds"] and metrics["streamlines_generated"] == figures["streamlines_generated"]
    with pytest.raises(RuntimeError, match=r"sub-01_dwi\.nii\.gz: tractography kept no streamline \(seed voxels: 0\)"):
        run_tractography(**files, tractogram=str(tmp_path / "none.trk"), sidecar=str(tmp_path / "none.json"),
                         params=replace(params, seed_fa_threshold=1.0))
    assert not (tmp_path / "none.trk").exists() and not (tmp_path / "none.json").exists()
