"""The synthetic cohort: BIDS layout, image geometry, and consistency with its ground truth."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from dipy.core.gradients import gradient_table
from dipy.reconst.dti import TensorModel
from scipy import ndimage
from scipy.stats import spearmanr

from connex.anat.templates import MNI_SPACE, load_mni_template
from connex.cli import main
from connex.inputs.checks import read_gradients
from connex.inputs.paths import bids_path
from connex.synth import SynthConfig, generate_cohort, generate_connectomes
from connex.synth import cohort as cohort_module
from connex.synth.cohort import make_ground_truth
from connex.synth.diffusion import bundle_curves, rasterize_bundles
from connex.synth.images import Grid
from tests.conftest import TINY

TRUTH = "derivatives/groundtruth"


def read_matrix(path):
    return pd.read_csv(path, sep="\t").to_numpy()


def test_bids_layout_and_participants(tiny_cohort):
    description = json.loads((tiny_cohort / "dataset_description.json").read_text())
    assert description["DatasetType"] == "raw" and description["BIDSVersion"]
    participants = pd.read_csv(tiny_cohort / "participants.tsv", sep="\t")
    assert participants.columns.tolist() == ["participant_id", "diagnosis", "site", "age", "sex"]
    assert set(participants["diagnosis"]) == {"HC", "SZ"}
    for subject in ("01", "02", "03"):
        for path in (bids_path(tiny_cohort, subject=subject, datatype="anat", suffix="T1w", extension=".nii.gz"),
                     bids_path(tiny_cohort, subject=subject, datatype="dwi", suffix="dwi", extension=".bval"),
                     bids_path(tiny_cohort, subject=subject, datatype="dwi", suffix="dwi", extension=".bvec"),
                     bids_path(tiny_cohort, subject=subject, datatype="dwi", suffix="dwi", extension=".json"),
                     bids_path(tiny_cohort, subject=subject, datatype="func", suffix="bold", extension=".json",
                               task="rest")):
            assert path.is_file(), path
    assert (tiny_cohort / TRUTH / f"atlas-synth_space-{MNI_SPACE}_res-2_dseg.nii.gz").is_file()


def test_image_geometry(tiny_cohort):
    t1w = nib.load(bids_path(tiny_cohort, subject="01", datatype="anat", suffix="T1w", extension=".nii.gz"))
    assert t1w.ndim == 3 and nib.aff2axcodes(t1w.affine) == ("R", "A", "S")
    assert np.allclose(t1w.header.get_zooms(), 4.0)

    dwi_path = bids_path(tiny_cohort, subject="01", datatype="dwi", suffix="dwi", extension=".nii.gz")
    dwi = nib.load(dwi_path)
    assert nib.aff2axcodes(dwi.affine) == ("L", "A", "S")  # FSL-style, negative determinant
    assert dwi.shape[3] == TINY.n_b0 + TINY.n_directions
    bvals, bvecs = read_gradients(dwi_path, dwi.shape[3])
    assert (bvals == 0).sum() == TINY.n_b0 and set(bvals[bvals > 0]) == {1000.0}
    assert np.allclose(np.linalg.norm(bvecs[bvals > 0], axis=1), 1.0, atol=1e-5)
    assert np.allclose(bvecs[bvals == 0], 0.0)

    bold_path = bids_path(tiny_cohort, subject="01", datatype="func", suffix="bold", extension=".nii.gz", task="rest")
    bold = nib.load(bold_path)
    assert bold.shape[3] == TINY.n_volumes
    assert bold.header.get_zooms()[3] == TINY.repetition_time
    sidecar = json.loads(bold_path.with_name(bold_path.name.replace(".nii.gz", ".json")).read_text())
    assert sidecar["RepetitionTime"] == TINY.repetition_time and sidecar["TaskName"] == "rest"


def test_t1w_is_the_template_moved_by_the_stored_transform(tiny_cohort):
    """Sampling the template through the ground-truth transform reproduces the T1w; without it, not."""
    template = load_mni_template(2)
    t1w = nib.load(bids_path(tiny_cohort, subject="02", datatype="anat", suffix="T1w", extension=".nii.gz"))
    xfm = np.loadtxt(bids_path(tiny_cohort / TRUTH, subject="02", datatype=None, suffix="xfm", extension=".txt",
                               from_="T1w", to=MNI_SPACE, mode="world"))
    assert not np.allclose(xfm, np.eye(4), atol=1e-3)

    def similarity(subject_to_mni):
        to_template = np.linalg.inv(template.affine) @ subject_to_mni @ t1w.affine
        moved = ndimage.affine_transform(template.t1w, to_template[:3, :3], to_template[:3, 3],
                                         output_shape=t1w.shape, order=1)
        brain = moved > 0.2
        return np.corrcoef(moved[brain], np.asarray(t1w.dataobj)[brain])[0, 1]

    assert similarity(xfm) > 0.9
    assert similarity(xfm) - similarity(np.eye(4)) > 0.1


def test_true_fc_is_exactly_the_correlation_of_the_true_time_courses(tiny_cohort):
    for subject in ("01", "02", "03"):
        folder = tiny_cohort / TRUTH / f"sub-{subject}"
        series = pd.read_csv(folder / f"sub-{subject}_task-rest_atlas-synth_desc-true_timeseries.tsv", sep="\t")
        fc = read_matrix(folder / f"sub-{subject}_task-rest_atlas-synth_meas-correlation_desc-true_relmat.tsv")
        assert series.shape == (TINY.n_volumes, TINY.n_regions)
        assert np.allclose(np.corrcoef(series.to_numpy().T), fc, atol=1e-6)
        # Haemodynamic smoothness: strong lag-1 autocorrelation.
        lag1 = [np.corrcoef(c[:-1], c[1:])[0, 1] for c in series.to_numpy().T]
        assert np.median(lag1) > 0.5


def test_true_sc_is_symmetric_and_matches_the_bundles(tiny_cohort):
    bundles = pd.read_csv(tiny_cohort / TRUTH / "group" / "bundles.tsv", sep="\t")
    sc = read_matrix(tiny_cohort / TRUTH / "sub-01" / "sub-01_atlas-synth_meas-bundlestrength_desc-true_relmat.tsv")
    assert np.allclose(sc, sc.T) and np.all(np.diag(sc) == 0) and np.all(sc >= 0)
    nonzero = {tuple(p) for p in np.argwhere(np.triu(sc) > 0) + 1}
    assert nonzero == set(zip(bundles["region_i"], bundles["region_j"]))


def test_bundles_run_through_white_matter_on_their_own_routes():
    """The bundles of the demo-sized atlas: each runs from its own two regions through brain tissue
    (no cut where the DWI would draw no fibre) and mostly through white matter; association
    bundles stay in their hemisphere; commissural ones cross the midline in white matter at
    their own anterior-posterior positions (the corpus callosum's length), not at one point;
    a region's bundles leave it from different points; and the routing draws no random numbers."""
    template = load_mni_template(2)
    parcellation, group = make_ground_truth(SynthConfig(n_regions=24, seed=0))
    state = np.random.get_state()
    curves = bundle_curves(parcellation, group, template)
    assert np.array_equal(np.random.get_state()[1], state[1])
    assert len(curves) == len(group.sc_edges)
    to_voxel = np.linalg.inv(template.affine)

    def sample(volume, points, order=1):
        return ndimage.map_coordinates(volume, (points @ to_voxel[:3, :3].T + to_voxel[:3, 3]).T, order=order)

    points = np.concatenate(curves)
    assert (sample(template.wm + template.gm, points) >= 0.5).mean() > 0.99
    assert (sample(template.wm, points) > 0.5).mean() > 0.65  # the central-knot routing had 0.47
    crossings, ends = [], {}
    for curve, (i, j) in zip(curves, group.sc_edges):
        assert sample(parcellation.labels, curve[[0, -1]], order=0).tolist() == [i + 1, j + 1]
        assert np.linalg.norm(np.diff(curve, axis=0), axis=1).max() < 1.5  # rasterised radius >= 1.2 mm: no gap
        ends.setdefault(i, set()).add(tuple(curve[0]))
        ends.setdefault(j, set()).add(tuple(curve[-1]))
        side = np.sign(curve[0, 0])
        if side == np.sign(curve[-1, 0]):
            assert np.all(curve[:, 0] * side > 0)
        else:
            crossing = curve[np.abs(curve[:, 0]).argmin()]
            assert abs(crossing[0]) < 1.5 and sample(template.wm, crossing[None])[0] > 0.5
            crossings.append(crossing[1])
    assert len(crossings) >= 12 and np.ptp(crossings) > 50 and len(np.unique(np.round(crossings))) >= 8
    busy = [r for r in ends if sum(r in e for e in group.sc_edges) >= 3]
    assert busy and all(len(ends[r]) >= 2 for r in busy)
    assert all(np.array_equal(a, b) for a, b in zip(curves, bundle_curves(parcellation, group, template)))


def test_dwi_fibre_directions_follow_the_bundles(tiny_cohort):
    """A tensor fitted through the b-vector file points along each bundle: the signal, the
    bvec convention and the geometry agree."""
    parcellation, group = make_ground_truth(TINY)
    template = load_mni_template(2)
    dwi_path = bids_path(tiny_cohort, subject="01", datatype="dwi", suffix="dwi", extension=".nii.gz")
    dwi = nib.load(dwi_path)
    xfm = np.loadtxt(bids_path(tiny_cohort / TRUTH, subject="01", datatype=None, suffix="xfm", extension=".txt",
                               from_="T1w", to=MNI_SPACE, mode="world"))
    grid = Grid(shape=dwi.shape[:3], affine=dwi.affine)
    voxel_ids, _, tangents = rasterize_bundles(bundle_curves(parcellation, group, template),
                                               np.ones(len(group.sc_edges)), grid, xfm,
                                               base_radius_mm=2.0)
    single = np.bincount(voxel_ids, minlength=int(np.prod(grid.shape)))[voxel_ids] == 1
    voxel_ids, tangents = voxel_ids[single], tangents[single]
    bvals, bvecs = read_gradients(dwi_path, dwi.shape[3])
    data = np.asarray(dwi.dataobj, dtype=float).reshape(-1, dwi.shape[3])
    fit = TensorModel(gradient_table(bvals, bvecs=bvecs)).fit(data[voxel_ids])
    fa = fit.fa
    strong = fa > 0.3
    assert strong.sum() >= 10
    alignment = np.abs((fit.evecs[strong, :, 0] * tangents[strong]).sum(1))
    assert np.median(alignment) > 0.9
    brain = data[:, 0] > np.percentile(data[:, 0], 70)
    brain[voxel_ids] = False
    background_fa = TensorModel(gradient_table(bvals, bvecs=bvecs)).fit(data[brain][:500]).fa
    assert np.median(fa) > 2 * np.median(background_fa)


def test_group_effect_is_on_the_declared_edges(tmp_path):
    """SZ bundles on the SC effect edges are weaker by the declared fraction, and the FC
    pairs of the effect table are where HC and SZ differ most."""
    config = SynthConfig(n_subjects=60, seed=3, n_regions=24)
    out = generate_connectomes(tmp_path / "c", config)
    participants = pd.read_csv(out / "participants.tsv", sep="\t")
    effects = pd.read_csv(out / TRUTH / "group" / "effect_edges.tsv", sep="\t")
    sc, fc = {}, {}
    for pid in participants["participant_id"]:
        folder = out / TRUTH / pid
        sc[pid] = read_matrix(folder / f"{pid}_atlas-synth_meas-bundlestrength_desc-true_relmat.tsv")
        fc[pid] = read_matrix(folder / f"{pid}_task-rest_atlas-synth_meas-correlation_desc-true_relmat.tsv")
    is_sz = participants.set_index("participant_id")["diagnosis"] == "SZ"
    mean = {group: (np.mean([sc[p] for p in is_sz.index if is_sz[p] == (group == "SZ")], 0),
                    np.mean([fc[p] for p in is_sz.index if is_sz[p] == (group == "SZ")], 0))
            for group in ("HC", "SZ")}
    sc_pairs = effects.query("modality == 'SC'")[["region_i", "region_j"]].to_numpy() - 1
    fc_pairs = effects.query("modality == 'FC'")[["region_i", "region_j"]].to_numpy() - 1
    assert len(sc_pairs) == config.n_sc_effect_edges and len(fc_pairs) == config.n_fc_effect_edges
    assert not {tuple(p) for p in sc_pairs} & {tuple(p) for p in fc_pairs}

    ratio = mean["SZ"][0] / np.where(mean["HC"][0] > 0, mean["HC"][0], np.nan)
    on_effect = ratio[sc_pairs[:, 0], sc_pairs[:, 1]]
    assert np.allclose(on_effect, 1 - config.sc_effect, atol=0.12)
    others = np.triu(np.isfinite(ratio), 1)
    others[sc_pairs[:, 0], sc_pairs[:, 1]] = False
    assert np.allclose(ratio[others], 1.0, atol=0.15)

    difference = np.triu(mean["HC"][1] - mean["SZ"][1], 1)
    top = np.argsort(difference.ravel())[::-1][: len(fc_pairs)]
    assert {tuple(np.unravel_index(i, difference.shape)) for i in top} == {tuple(p) for p in fc_pairs}


def test_connectomes_only_layout_and_plausibility(tmp_path):
    config = SynthConfig(n_subjects=6, seed=1, n_regions=16)
    out = generate_connectomes(tmp_path / "c", config)
    names = pd.read_csv(out / TRUTH / "atlas-synth_dseg.tsv", sep="\t")["name"].tolist()
    count_file = bids_path(out, subject="04", datatype="dwi", suffix="relmat", extension=".tsv", atlas="synth",
                           meas="count")
    fc_file = bids_path(out, subject="04", datatype="func", suffix="relmat", extension=".tsv", task="rest",
                        atlas="synth", meas="correlation")
    counts = pd.read_csv(count_file, sep="\t")
    assert counts.columns.tolist() == names and counts.shape == (16, 16)
    counts = counts.to_numpy()
    assert np.allclose(counts, counts.T) and np.all(counts == np.round(counts)) and np.all(np.diag(counts) == 0)
    fc = pd.read_csv(fc_file, sep="\t").to_numpy()
    assert np.allclose(fc, fc.T) and np.allclose(np.diag(fc), 1.0) and np.abs(fc).max() <= 1.0
    truth = read_matrix(out / TRUTH / "sub-04" / "sub-04_atlas-synth_meas-bundlestrength_desc-true_relmat.tsv")
    edges = np.triu(truth, 1) > 0
    assert spearmanr(truth[edges], counts[edges]).statistic > 0.6
    assert counts[edges].mean() > 10 * counts[np.triu(~edges, 1)].mean()
    true_fc = read_matrix(out / TRUTH / "sub-04" / "sub-04_task-rest_atlas-synth_meas-correlation_desc-true_relmat.tsv")
    upper = np.triu_indices(16, 1)
    assert np.corrcoef(true_fc[upper], fc[upper])[0, 1] > 0.7


def test_same_seed_same_cohort_other_seed_other_cohort(tmp_path):
    config = SynthConfig(n_subjects=4, seed=5, n_regions=12, n_fc_effect_edges=3)
    first = generate_connectomes(tmp_path / "a", config)
    second = generate_connectomes(tmp_path / "b", config)
    third = generate_connectomes(tmp_path / "c", SynthConfig(n_subjects=4, seed=6, n_regions=12, n_fc_effect_edges=3))
    name = "sub-02/func/sub-02_task-rest_atlas-synth_meas-correlation_relmat.tsv"
    assert (first / name).read_bytes() == (second / name).read_bytes()
    assert (first / name).read_bytes() != (third / name).read_bytes()


def test_images_are_reproducible(tiny_cohort, tmp_path):
    again = generate_cohort(tmp_path / "again", TINY)
    for relative in ("sub-03/dwi/sub-03_dwi.nii.gz", "sub-03/func/sub-03_task-rest_bold.nii.gz"):
        assert np.array_equal(np.asarray(nib.load(tiny_cohort / relative).dataobj),
                              np.asarray(nib.load(again / relative).dataobj))


def test_never_writes_into_an_existing_folder_and_leaves_nothing_on_failure(tmp_path, monkeypatch):
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "participants.tsv").write_text("participant_id\n")
    with pytest.raises(FileExistsError, match="already exists and is not empty"):
        generate_connectomes(existing, SynthConfig(n_subjects=2, n_regions=8, n_volumes=40, n_fc_effect_edges=2))

    def broken(*args, **kwargs):
        raise RuntimeError("killed mid-way")

    monkeypatch.setattr(cohort_module, "render_bold", broken)
    with pytest.raises(RuntimeError, match="killed mid-way"):
        generate_cohort(tmp_path / "new", TINY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]


def test_command_line(tmp_path):
    out = tmp_path / "cohort"
    assert main(["synth", str(out), "--subjects", "4", "--regions", "8", "--volumes", "40",
                 "--fc-effect-edges", "2", "--connectomes-only"]) == 0
    assert len(list(out.glob("sub-*/func/*_relmat.tsv"))) == 4
    assert main(["synth", str(out), "--connectomes-only"]) == 2  # exists: refused
    assert main(["synth", str(tmp_path / "x"), "--regions", "8", "--connectomes-only"]) == 2
    assert main(["inventory", str(out), str(tmp_path / "t.tsv")]) == 0


def test_harder_cohort_own_anatomy_white_matter_fibres_and_spin_history(tiny_cohort, tmp_path):
    """The realism options: each subject's tissues are its own (not the template's), white matter
    outside the bundles is anisotropic, and slices alternate in brightness after a head jump;
    with the options off the demo's images are unchanged (test_images_are_reproducible)."""
    from dataclasses import replace

    from connex.synth.cohort import individual_anatomy
    from connex.synth.images import BoldNoise

    template = load_mni_template(2)
    anatomy = individual_anatomy(template, np.random.default_rng(0))
    template_labels = np.argmax(np.stack([template.csf, template.gm, template.wm]), 0) + 1
    moved = (anatomy.labels != template_labels) & template.brain_mask
    assert 0.05 < moved.sum() / template.brain_mask.sum() < 0.5  # boundaries move, the brain stays
    total = anatomy.tissues.gm + anatomy.tissues.wm + anatomy.tissues.csf
    interior = ndimage.binary_erosion(template.brain_mask, iterations=2)
    assert np.allclose(total[interior], 1.0, atol=0.01) and total[~template.brain_mask].max() < 0.5

    config = replace(TINY, n_subjects=1, individual_anatomy=True, background_fibre_fraction=0.45,
                     motion_mm=2.0, bold_noise=BoldNoise(spin_history=0.3))
    hard = generate_cohort(tmp_path / "hard", config)

    def white_matter_fa(root):
        path = bids_path(root, subject="01", datatype="dwi", suffix="dwi", extension=".nii.gz")
        image = nib.load(path)
        bvals, bvecs = read_gradients(path, image.shape[3])
        data = np.asarray(image.dataobj, dtype=float)
        b0 = data[..., bvals < 50].mean(-1)
        inside = b0 > 0.3 * np.percentile(b0, 99)
        return np.percentile(TensorModel(gradient_table(bvals, bvecs=bvecs)).fit(data[inside]).fa, 75)

    assert white_matter_fa(hard) > white_matter_fa(tiny_cohort) + 0.1
    bold = np.asarray(nib.load(bids_path(hard, subject="01", datatype="func", suffix="bold", extension=".nii.gz",
                                         task="rest")).dataobj, dtype=float)
    motion = pd.read_csv(bids_path(hard / TRUTH, subject="01", datatype=None, suffix="timeseries", extension=".tsv",
                                   task="rest", desc="truemotion"), sep="\t").to_numpy()
    steps = np.abs(np.diff(motion, axis=0))
    jump = np.r_[0.0, steps[:, :3].sum(1) + 50 * steps[:, 3:].sum(1)]
    after = np.flatnonzero(jump > 0.5)
    assert len(after) >= 1
    even_over_odd = bold[:, :, ::2].mean((0, 1, 2)) / bold[:, :, 1::2].mean((0, 1, 2))
    quiet = np.setdiff1d(np.arange(len(jump)), np.r_[after, after + 1])
    assert np.median(even_over_odd[after]) < 0.9 * np.median(even_over_odd[quiet])
