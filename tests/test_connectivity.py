"""Confound strategies, scrubbing, parcellation, connectivity measures, and the fMRIPrep start."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from connex.anat.atlases import Atlas
from connex.errors import BIDSError, ConfigError
from connex.functional.confounds import MOTION_COLUMNS
from connex.functional.connectivity import (
    CleaningParams,
    censor,
    confound_arguments,
    connectivity,
    parcellate,
    select_confounds,
)
from connex.functional.stage import (
    find_fmriprep_run,
    fmriprep_run_keys,
    run_censoring,
    run_functional_connectome,
    run_region_timeseries,
)


def test_strategies_are_nilearn_load_confounds_parameters():
    # The regressor counts of every strategy, on fMRIPrep-like files: tests/test_fmriprep_confounds.py.
    assert confound_arguments("36P", global_signal=True) == {
        "strategy": ("motion", "wm_csf", "global_signal"), "motion": "full", "wm_csf": "full", "global_signal": "full"}
    assert confound_arguments("8P") == {"strategy": ("motion", "wm_csf"), "motion": "basic", "wm_csf": "basic"}
    with pytest.raises(ConfigError, match=r"'strategy' must be one of \{'none', '6P', '8P', '24P', '36P', "
                                          r"'aCompCor'\}; '9P' was provided\."):
        confound_arguments("9P")  # Ciric's 9P is 8P with global_signal: true


def test_missing_confound_column_names_the_file_and_the_column():
    table = pd.DataFrame(np.zeros((5, 6)), columns=MOTION_COLUMNS)
    with pytest.raises(BIDSError, match=r"sub-03_desc-confounds_timeseries.tsv: .*'24P'.*trans_x_derivative1"):
        select_confounds(table, CleaningParams(strategy="24P"), "sub-03_desc-confounds_timeseries.tsv")
    table.loc[0, "trans_x"] = np.nan
    selected = select_confounds(table, CleaningParams(strategy="6P"), "x")
    assert selected.shape == (5, 6) and selected.notna().all().all()


def test_censoring_and_exclusion_reasons():
    fd = np.array([np.nan, 0.1, 0.9, 0.2, 0.6, 0.1, 0.1, 0.1, 0.1, 0.1])
    kept = censor(fd, 2.0, CleaningParams(fd_threshold=0.5, min_clean_seconds=10), n_regressors=2)
    assert kept.keep.tolist() == [True, True, False, True, False, True, True, True, True, True]
    assert kept.included and kept.clean_seconds == 16.0
    short = censor(fd, 2.0, CleaningParams(fd_threshold=0.5, min_clean_seconds=20), n_regressors=2)
    assert not short.included and "16 s of clean data" in short.reason and "minimum of 20 s" in short.reason
    no_dof = censor(fd, 2.0, CleaningParams(fd_threshold=None, min_clean_seconds=0), n_regressors=8)
    assert not no_dof.included and "degrees of freedom" in no_dof.reason
    assert censor(fd, 2.0, CleaningParams(fd_threshold=None, min_clean_seconds=0), n_regressors=2).n_kept == 10


def region_image(rng, n_volumes=120, shape=(10, 8, 6)):
    """Four regions (one empty) with known signals, a shared confound, and voxel noise."""
    labels = np.zeros(shape, np.int32)
    labels[:5, :4] = 1
    labels[5:, :4] = 2
    labels[:5, 4:] = 4  # region 3 has no voxel
    signals = rng.normal(size=(n_volumes, 4))
    signals[:, 1] = 0.7 * signals[:, 0] + 0.3 * signals[:, 1]
    confound = np.cumsum(rng.normal(size=n_volumes))
    data = np.full(shape + (n_volumes,), 500.0)
    for position in (1, 2, 4):
        data[labels == position] += 10 * signals[:, position - 1] + 20 * confound
    data += rng.normal(0, 1, data.shape)
    return nib.Nifti1Image(data.astype(np.float32), np.eye(4)), labels, signals, confound


def test_parcellate_regresses_confounds_keeps_every_region_in_order(rng):
    image, labels, signals, confound = region_image(rng)
    brain = np.ones(labels.shape, bool)
    keep = np.ones(120, bool)
    keep[[10, 50]] = False
    params = CleaningParams(strategy="6P", fd_threshold=None, low_pass=None, high_pass=None)
    confounds = pd.DataFrame({"c": confound})
    timeseries, without_signal = parcellate(image, labels, brain, 4, confounds, keep, params, 2.0)
    assert timeseries.shape == (118, 4) and without_signal == [3]
    assert np.all(timeseries[:, 2] == 0)
    for position in (1, 2, 4):
        assert np.corrcoef(timeseries[:, position - 1], signals[keep, position - 1])[0, 1] > 0.97
    raw, _ = parcellate(image, labels, brain, 4, None, keep, params, 2.0)
    assert np.corrcoef(raw[:, 0], signals[keep, 0])[0, 1] < 0.8  # the confound dominates without regression


def test_connectivity_measures(rng):
    timeseries = rng.normal(size=(200, 4))
    timeseries[:, 1] += timeseries[:, 0]
    timeseries[:, 2] = 0.0
    correlation = connectivity(timeseries, [3], "correlation")
    present = [0, 1, 3]
    expected = np.corrcoef(timeseries[:, present].T)
    np.fill_diagonal(expected, 0)
    assert np.allclose(correlation[np.ix_(present, present)], expected)
    assert np.all(correlation[2] == 0) and np.all(correlation[:, 2] == 0)
    z = connectivity(timeseries, [3], "correlation", fisher_z=True)
    assert np.allclose(z[0, 1], np.arctanh(expected[0, 1]))
    partial = connectivity(timeseries, [3], "partialcorrelation", estimator="empirical")
    precision = np.linalg.inv(np.cov(timeseries[:, present].T, bias=True))
    d = np.sqrt(np.diag(precision))
    assert np.allclose(partial[0, 1], -precision[0, 1] / (d[0] * d[1]), atol=1e-6)
    covariance = connectivity(timeseries, [3], "covariance")
    assert np.allclose(covariance, covariance.T) and np.all(np.diag(covariance)[present] > 0)
    shrunk = connectivity(timeseries, [3], "covariance", estimator="ledoitwolf")
    empirical = connectivity(timeseries, [3], "covariance", estimator="empirical")
    assert abs(shrunk[0, 1]) < abs(empirical[0, 1])  # Ledoit-Wolf shrinks off-diagonal terms


def fake_fmriprep(root, rng, *, drop_column=None, subject="05", run=None):
    """An fMRIPrep-like run in MNI space: two correlated regions of a small atlas."""
    func = root / f"sub-{subject}" / "func"
    func.mkdir(parents=True, exist_ok=True)
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = [-20, -20, -20]
    labels = np.zeros((10, 10, 10), np.int32)
    labels[1:5, 2:8, 2:8] = 10  # atlas indices need not be 1..n
    labels[5:9, 2:8, 2:8] = 20
    n_volumes = 150
    shared = rng.normal(size=n_volumes)
    first, second = shared + 0.5 * rng.normal(size=n_volumes), shared + 0.5 * rng.normal(size=n_volumes)
    motion = np.cumsum(rng.normal(0, 0.05, (n_volumes, 6)), axis=0)
    data = np.full((10, 10, 10, n_volumes), 800.0)
    data[labels == 10] += 8 * first + 30 * motion[:, 0]
    data[labels == 20] += 8 * second + 30 * motion[:, 0]
    data += rng.normal(0, 1, data.shape)
    stem = f"sub-{subject}_task-rest" + (f"_run-{run}" if run else "")
    bold = nib.Nifti1Image(data.astype(np.float32), affine)
    nib.save(bold, func / f"{stem}_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((10, 10, 10), np.uint8), affine),
             func / f"{stem}_space-MNI152NLin2009cAsym_res-2_desc-brain_mask.nii.gz")
    (func / f"{stem}_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.json").write_text(
        json.dumps({"RepetitionTime": 2.0}))
    confounds = pd.DataFrame(motion, columns=MOTION_COLUMNS)
    confounds["framewise_displacement"] = np.r_[np.nan, np.abs(np.diff(motion[:, :3], axis=0)).sum(1)]
    if drop_column:
        confounds = confounds.drop(columns=drop_column)
    confounds.to_csv(func / f"{stem}_desc-confounds_timeseries.tsv", sep="\t", index=False, na_rep="n/a")
    atlas = Atlas(name="two", labels=labels, affine=affine,
                  table=pd.DataFrame({"index": [10, 20], "name": ["left", "right"]}), space="MNI152NLin2009cAsym",
                  source="test", citation="")
    return atlas, np.corrcoef(first, second)[0, 1]


def test_connectome_from_fmriprep_derivatives(tmp_path, rng):
    atlas, true_correlation = fake_fmriprep(tmp_path / "fmriprep", rng)
    found = find_fmriprep_run(tmp_path / "fmriprep", "05", task="rest", space="MNI152NLin2009cAsym")
    assert found["confounds"].endswith("sub-05_task-rest_desc-confounds_timeseries.tsv")
    params = CleaningParams(strategy="6P", fd_threshold=None, min_clean_seconds=60)
    out = tmp_path / "out"
    run_censoring(confounds=found["confounds"], sidecar=found["sidecar"], bold=found["bold"],
                  out_tsv=str(out / "outliers.tsv"), out_json=str(out / "outliers.json"), params=params)
    run_region_timeseries(
        bold=found["bold"], mask=found["mask"], confounds=found["confounds"], outliers=str(out / "outliers.tsv"),
        sidecar=found["sidecar"], atlas=atlas, out_timeseries=str(out / "timeseries.tsv"),
        out_figure=str(out / "qc.png"), params=params, title="sub-05")
    matrices = run_functional_connectome(timeseries=[str(out / "timeseries.tsv")],
                                         out_matrices={"correlation": str(out / "correlation_relmat.tsv")},
                                         fisher_z=False, estimator="ledoitwolf")
    assert abs(matrices["correlation"][0, 1] - true_correlation) < 0.05
    written = pd.read_csv(out / "correlation_relmat.tsv", sep="\t")
    assert list(written.columns) == ["left", "right"]
    sidecar = json.loads((out / "correlation_relmat.json").read_text())
    assert sidecar["ConfoundStrategy"] == "6P" and sidecar["VolumesKept"] == 150
    assert (out / "qc.png").stat().st_size > 10_000

    with pytest.raises(BIDSError, match="no fMRIPrep BOLD matching"):
        find_fmriprep_run(tmp_path / "fmriprep", "05", task="rest", space="MNI152NLin6Asym")


def test_fmriprep_confounds_missing_a_needed_column_is_a_clear_error(tmp_path, rng):
    fake_fmriprep(tmp_path / "fmriprep", rng, drop_column="rot_y")
    found = find_fmriprep_run(tmp_path / "fmriprep", "05", task="rest", space="MNI152NLin2009cAsym")
    with pytest.raises(BIDSError, match=r"sub-05_task-rest_desc-confounds_timeseries.tsv.*'6P'.*rot_y"):
        run_censoring(confounds=found["confounds"], sidecar=found["sidecar"], bold=found["bold"],
                      out_tsv=str(tmp_path / "o.tsv"), out_json=str(tmp_path / "o.json"),
                      params=CleaningParams(strategy="6P"))


def test_excluded_run_writes_the_reason_and_gets_no_connectome(tmp_path, rng):
    atlas, _ = fake_fmriprep(tmp_path / "fmriprep", rng)
    found = find_fmriprep_run(tmp_path / "fmriprep", "05", task="rest", space="MNI152NLin2009cAsym")
    params = CleaningParams(strategy="6P", fd_threshold=0.5, min_clean_seconds=600)
    result = run_censoring(confounds=found["confounds"], sidecar=found["sidecar"], bold=found["bold"],
                           out_tsv=str(tmp_path / "o.tsv"), out_json=str(tmp_path / "o.json"), params=params)
    decision = json.loads((tmp_path / "o.json").read_text())
    assert not result.included and decision["Included"] is False and "minimum of 600 s" in decision["Reason"]
    with pytest.raises(BIDSError, match="excluded"):
        run_region_timeseries(bold=found["bold"], mask=found["mask"], confounds=found["confounds"],
                              outliers=str(tmp_path / "o.tsv"), sidecar=found["sidecar"], atlas=atlas,
                              out_timeseries=str(tmp_path / "t.tsv"), out_figure=str(tmp_path / "q.png"),
                              params=params, title="x")


def test_runs_of_a_visit_are_concatenated_after_removing_each_runs_mean(tmp_path, rng):
    """Two fMRIPrep runs (run-1, run-2): each found by its label, cleaned on its own, and one
    matrix from both: the correlation of the concatenated, per-run demeaned time series."""
    for run in ("1", "2"):
        atlas, _ = fake_fmriprep(tmp_path / "fmriprep", rng, run=run)
    assert fmriprep_run_keys(tmp_path / "fmriprep", "05", task="rest", space="MNI152NLin2009cAsym") == [
        "_run-1", "_run-2"]
    assert fmriprep_run_keys(tmp_path / "fmriprep", "05", task="rest", space="MNI152NLin6Asym") == []
    with pytest.raises(BIDSError, match="run-3"):
        find_fmriprep_run(tmp_path / "fmriprep", "05", task="rest", space="MNI152NLin2009cAsym", run="3")
    params = CleaningParams(strategy="6P", fd_threshold=None, min_clean_seconds=60, standardize=None)
    series = []
    for run in ("1", "2"):
        found = find_fmriprep_run(tmp_path / "fmriprep", "05", task="rest", space="MNI152NLin2009cAsym", run=run)
        assert f"_run-{run}_" in found["bold"] and f"_run-{run}_" in found["confounds"]
        out = tmp_path / f"run-{run}"
        run_censoring(confounds=found["confounds"], sidecar=found["sidecar"], bold=found["bold"],
                      out_tsv=str(out / "outliers.tsv"), out_json=str(out / "outliers.json"), params=params)
        run_region_timeseries(bold=found["bold"], mask=found["mask"], confounds=found["confounds"],
                              outliers=str(out / "outliers.tsv"), sidecar=found["sidecar"], atlas=atlas,
                              out_timeseries=str(out / "timeseries.tsv"), out_figure=str(out / "qc.png"),
                              params=params, title="x")
        series.append(str(out / "timeseries.tsv"))
    values = [pd.read_csv(p, sep="\t").to_numpy() for p in series]
    values[1] = values[1] + 50.0  # a run with another mean must not add a spurious correlation
    pd.DataFrame(values[1], columns=["left", "right"]).to_csv(series[1], sep="\t", index=False)
    matrices = run_functional_connectome(timeseries=series, fisher_z=False, estimator="ledoitwolf",
                                         out_matrices={m: str(tmp_path / f"{m}.tsv")
                                                       for m in ("correlation", "covariance")})
    pooled = np.concatenate([v - v.mean(axis=0) for v in values])
    assert matrices["correlation"][0, 1] == pytest.approx(np.corrcoef(pooled.T)[0, 1], abs=1e-9)
    assert 0.5 < matrices["correlation"][0, 1] < 0.95
    naive = np.corrcoef(np.concatenate(values).T)[0, 1]
    assert naive > matrices["correlation"][0, 1] + 0.05  # what concatenating without demeaning would give
    sidecar = json.loads((tmp_path / "correlation.json").read_text())
    assert sidecar["Runs"] == 2 and sidecar["VolumesKept"] == 300 and sidecar["Sources"] == series
