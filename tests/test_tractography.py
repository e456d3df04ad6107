"""Connectome construction from hand-made streamlines, seeding, SH order, and tractogram files."""

import nibabel as nib
import numpy as np
import pytest

from connex.errors import ConfigError
from connex.structural.connectome import assignment_labels, connectome
from connex.structural.tracking import TrackingParams, load_tractogram, sample_seeds, save_tractogram, sh_order_for

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def _labels() -> np.ndarray:
    """Four regions in a 20x10x10 grid (2 mm): 1 at x 0-3, 2 at x 16-19, 3 at y 8-9 (x 8-11),
    4 has no voxel."""
    labels = np.zeros((20, 10, 10), dtype=int)
    labels[0:4] = 1
    labels[16:20] = 2
    labels[8:12, 8:10] = 3
    return labels


def _line(start_voxel, end_voxel, n=20) -> np.ndarray:
    return np.linspace(start_voxel, end_voxel, n) * 2.0  # world mm (2 mm voxels, origin 0)


def test_counts_lengths_fa_and_volume_normalisation():
    labels = _labels()
    fa = np.full(labels.shape, 0.5)
    fa[:, :5] = 0.3
    streamlines = [_line([1, 2, 5], [18, 2, 5])] * 3 + [_line([1, 7, 5], [18, 7, 5])]  # 1-2: 3 at FA .3, 1 at .5
    streamlines += [_line([10, 2, 5], [10, 9, 5])]  # 3 (end) to unlabelled (start, far away): not assigned
    streamlines += [_line([2, 2, 2], [2, 6, 2])]  # 1-1: a self-loop
    streamlines += [np.array([[2.0, 4.0, 4.0]])]  # a single point: ignored, no crash
    matrices, figures = connectome(streamlines, labels, AFFINE, 4, fa, assignment_radius_mm=0)
    count = matrices["count"]
    assert count.shape == (4, 4) and np.allclose(count, count.T)
    assert count[0, 1] == 4 and count.sum() == 8  # the 1-2 edge, both triangles
    assert count[0, 0] == 0  # no self-loops by default
    length = np.linalg.norm(np.array([17, 0, 0]) * 2.0)
    assert matrices["length"][0, 1] == pytest.approx(length)
    assert matrices["fa"][0, 1] == pytest.approx((3 * 0.3 + 0.5) / 4)
    volume_ml = 4 * 10 * 10 * 8 / 1000  # regions 1 and 2: 400 voxels of 8 mm3
    assert matrices["countvolnorm"][0, 1] == pytest.approx(4 / (2 * volume_ml))
    assert figures["regions_without_voxels"] == [4]
    assert figures["streamlines"] == 6 and figures["streamlines_assigned"] == 4
    assert figures["edges_nonzero"] == 1
    with_loops, _ = connectome(streamlines, labels, AFFINE, 4, fa, assignment_radius_mm=0, self_loops=True)
    assert with_loops["count"][0, 0] == 1


def test_radial_search_assigns_ends_near_a_region_only():
    labels = _labels()
    near = _line([5, 2, 5], [14, 2, 5])  # ends 2 voxels (4 mm) from regions 1 and 2
    far = _line([7, 2, 5], [12, 2, 5])  # ends 8 mm away
    fa = np.full(labels.shape, 0.5)
    strict, _ = connectome([near, far], labels, AFFINE, 4, fa, assignment_radius_mm=0)
    radial, _ = connectome([near, far], labels, AFFINE, 4, fa, assignment_radius_mm=4)
    assert strict["count"][0, 1] == 0 and radial["count"][0, 1] == 1
    grown = assignment_labels(labels, 2.0, 4.0)
    assert grown[5, 2, 5] == 1 and grown[6, 2, 5] == 0 and grown[14, 2, 5] == 2


def test_labels_beyond_the_atlas_are_an_error():
    labels = _labels()
    labels[0, 0, 0] = 7
    with pytest.raises(ValueError, match=r"range 0..7; expected 0..4"):
        connectome([], labels, AFFINE, 4, np.zeros(labels.shape))


def test_seeds_fill_their_voxels_and_follow_the_seed():
    mask = np.zeros((5, 5, 5), bool)
    mask[2, 3, 1] = True
    seeds = sample_seeds(mask, AFFINE, 50, np.random.default_rng(0))
    assert seeds.shape == (50, 3)
    assert np.all(np.abs(seeds - np.array([4.0, 6.0, 2.0])) <= 1.0)  # within the 2 mm voxel
    again = sample_seeds(mask, AFFINE, 50, np.random.default_rng(0))
    assert np.array_equal(seeds, again)


def test_sh_order_fits_the_number_of_directions():
    assert sh_order_for(20) == 4  # 15 coefficients fit, 28 do not
    assert sh_order_for(30) == 6
    assert sh_order_for(64) == 8 and sh_order_for(200) == 8
    with pytest.raises(ConfigError, match=r"'model' must be one of \{'csd', 'csa'\}; 'dti' was provided\."):
        TrackingParams(model="dti")


def test_tractogram_round_trip(tmp_path):
    reference = nib.Nifti1Image(np.zeros((20, 10, 10), np.float32), AFFINE)
    streamlines = [_line([1, 2, 5], [18, 2, 5]).astype(np.float32), _line([3, 3, 3], [3, 8, 8]).astype(np.float32)]
    save_tractogram(streamlines, reference, tmp_path / "t.trk")
    loaded = load_tractogram(tmp_path / "t.trk")
    assert len(loaded) == 2 and all(np.allclose(a, b, atol=1e-3) for a, b in zip(loaded, streamlines))


def test_tractogram_streamed_from_a_generator_is_the_file_dipy_writes(tmp_path, rng):
    """save_tractogram consumes a generator once, as it goes, and writes the bytes dipy's
    save_tractogram writes for the same streamlines as a list (oblique grid, unequal sizes)."""
    from dipy.io.stateful_tractogram import Space, StatefulTractogram
    from dipy.io.streamline import save_tractogram as dipy_save

    affine = np.array([[-2.5, 0.1, 0, 90], [0, 2.5, 0.2, -120], [0, 0, 2.4, -70], [0, 0, 0, 1]])
    reference = nib.Nifti1Image(np.zeros((7, 8, 9), np.uint8), affine)
    streamlines = [(np.cumsum(rng.normal(size=(rng.integers(2, 40), 3)), axis=0) + 10).astype(np.float32)
                   for _ in range(300)]
    consumed = []

    def generated():
        for streamline in streamlines:
            consumed.append(1)
            yield streamline

    assert save_tractogram(generated(), reference, tmp_path / "streamed.trk") == 300 and len(consumed) == 300
    dipy_save(StatefulTractogram(streamlines, reference, Space.RASMM), str(tmp_path / "dipy.trk"),
              bbox_valid_check=False)
    assert (tmp_path / "streamed.trk").read_bytes() == (tmp_path / "dipy.trk").read_bytes()
    loaded = load_tractogram(tmp_path / "streamed.trk")
    assert len(loaded) == 300 and all(np.allclose(a, b, atol=1e-3) for a, b in zip(loaded, streamlines))


def test_tractogram_stream_that_fails_leaves_no_file(tmp_path):
    """An error while the streamlines are generated (e.g. none kept) leaves no tractogram behind."""
    reference = nib.Nifti1Image(np.zeros((20, 10, 10), np.float32), AFFINE)

    def failing():
        yield _line([1, 2, 5], [18, 2, 5]).astype(np.float32)
        raise RuntimeError("tracking failed")

    with pytest.raises(RuntimeError, match="tracking failed"):
        save_tractogram(failing(), reference, tmp_path / "t.trk")
    assert list(tmp_path.iterdir()) == []


def test_connectome_in_chunks_is_the_same_as_in_one(monkeypatch, rng):
    """The tractogram is read CHUNK streamlines at a time (memory), from a list or a generator; the
    matrices do not depend on the chunk size, and each streamline's length is its own steps only."""
    import connex.structural.connectome as sc

    labels = rng.integers(0, 6, (10, 10, 10))
    fa = rng.random((10, 10, 10))
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    streamlines = [np.cumsum(rng.normal(0, 1, (rng.integers(2, 30), 3)), axis=0) + 10 for _ in range(2000)]
    whole, figures = connectome(streamlines, labels, affine, 5, fa)
    monkeypatch.setattr(sc, "CHUNK", 333)
    chunked, chunked_figures = connectome(streamlines, labels, affine, 5, fa)
    assert figures == chunked_figures and all(np.allclose(whole[k], chunked[k]) for k in whole)
    # read from a generator (as from a tractogram file), with one-point streamlines it skips
    single = [rng.normal(0, 1, (1, 3)) + 10 for _ in range(400)]
    streamed, streamed_figures = connectome((s for s in single + streamlines), labels, affine, 5, fa)
    assert figures == streamed_figures and all(np.allclose(whole[k], streamed[k]) for k in whole)
    assert figures["streamlines"] == 2000 and whole["count"].sum() > 0
    _, lengths, _ = sc._streamline_features(streamlines[:400], labels, np.linalg.inv(affine), fa)
    assert np.allclose(lengths, [np.linalg.norm(np.diff(s, axis=0), axis=1).sum() for s in streamlines[:400]])
