"""Confound selection through nilearn's load_confounds, on confounds files laid out as fMRIPrep
writes them (before 21.0: every anatomical CompCor under ``a_comp_cor_``, the mask only in the
JSON; from 21.0: ``c_comp_cor_``/``w_comp_cor_``/``a_comp_cor_``) and on ConneX's own."""

import json
import logging

import numpy as np
import pandas as pd
import pytest

from connex.errors import BIDSError
from connex.functional.confounds import MOTION_COLUMNS, TissueMasks, compute_confounds
from connex.functional.connectivity import (
    CleaningParams,
    confound_arguments,
    load_strategy_confounds,
    select_confounds,
)
from connex.functional.series import BoldSeries
from connex.functional.stage import run_censoring
from connex.inputs.io import write_json, write_tsv

N_VOLUMES = 100
#: Masks of fMRIPrep 20.x's a_comp_cor_NN, in file order (sorted by singular value across masks).
MASKS_BEFORE_21 = ["combined", "CSF", "WM", "combined", "WM", "CSF", "WM", "combined", "combined", "CSF", "WM",
                   "combined"]
COMBINED_BEFORE_21 = [f"a_comp_cor_{k:02d}" for k, mask in enumerate(MASKS_BEFORE_21) if mask == "combined"]
COSINES = [f"cosine_{k:02d}" for k in range(4)]  # 200 s at TR 2: 2 * 200 / 128, floor 3, plus one of 250 s
MOTION_DERIVATIVES = MOTION_COLUMNS + [f"{c}_derivative1" for c in MOTION_COLUMNS]


def expansions(names: list[str]) -> list[str]:
    """fMRIPrep's four terms of each signal."""
    return [f"{n}{suffix}" for n in names for suffix in ("", "_derivative1", "_power2", "_derivative1_power2")]


def compcor_entry(rng, mask: str | None, method: str, retained: bool = True) -> dict:
    entry = {"CumulativeVarianceExplained": float(rng.uniform(0, 0.5)), "Method": method, "Retained": retained,
             "SingularValue": float(rng.uniform(10, 100)), "VarianceExplained": float(rng.uniform(0, 0.1))}
    return entry if mask is None else {**entry, "Mask": mask}


def fmriprep_confounds(rng, layout: str) -> tuple[pd.DataFrame, dict]:
    """A confounds table and JSON as fMRIPrep writes them (``layout``: ``"20.2"`` or ``"21"``).

    Columns (fMRIPrep's documentation): global_signal, csf, white_matter (and csf_wm, tcompcor from
    21.0) with their expansions; std_dvars, dvars, framewise_displacement, rmsd; t_comp_cor_XX,
    the anatomical CompCor of ``layout``; cosine_XX; trans_x...rot_z with expansions;
    non_steady_state_outlier_XX and motion_outlier_XX. Derivatives and FD are n/a on the first row.
    """
    signals = ["global_signal", "csf", "white_matter"] + (["csf_wm", "tcompcor"] if layout == "21" else [])
    metadata = {name: {"Method": "Mean"} for name in signals} if layout == "21" else {}
    if layout == "20.2":
        compcor = {f"a_comp_cor_{k:02d}": mask for k, mask in enumerate(MASKS_BEFORE_21)}
    else:
        compcor = {f"{prefix}_comp_cor_{k:02d}": mask
                   for prefix, mask, count in (("c", "CSF", 3), ("w", "WM", 4), ("a", "combined", 5))
                   for k in range(count)}
    metadata.update({name: compcor_entry(rng, mask, "aCompCor") for name, mask in compcor.items()})
    metadata.update({f"t_comp_cor_{k:02d}": compcor_entry(rng, None, "tCompCor") for k in range(3)})
    metadata.update({f"dropped_{k}": compcor_entry(rng, mask, "aCompCor", retained=False)
                     for k, mask in enumerate(["CSF", "WM", "combined"])})
    columns = (expansions(signals) + ["std_dvars", "dvars", "framewise_displacement", "rmsd"]
               + [f"t_comp_cor_{k:02d}" for k in range(3)] + list(compcor) + COSINES + expansions(MOTION_COLUMNS)
               + ["non_steady_state_outlier_00", "motion_outlier_00", "motion_outlier_01"])
    table = pd.DataFrame(rng.normal(size=(N_VOLUMES, len(columns))), columns=columns)
    table.loc[0, [c for c in columns if "derivative1" in c] + ["framewise_displacement", "std_dvars", "dvars"]] = np.nan
    table["framewise_displacement"] = np.r_[np.nan, np.full(N_VOLUMES - 1, 0.1)]
    table.loc[[30, 31], "framewise_displacement"] = 0.9
    table["non_steady_state_outlier_00"] = np.eye(N_VOLUMES)[0]
    table["motion_outlier_00"], table["motion_outlier_01"] = np.eye(N_VOLUMES)[30], np.eye(N_VOLUMES)[31]
    return table, metadata


def write_fmriprep(root, rng, layout: str, *, with_json: bool = True):
    """Write a run's confounds where fMRIPrep puts them; return (BOLD path, TSV path, table)."""
    func = root / "sub-01" / "func"
    table, metadata = fmriprep_confounds(rng, layout)
    tsv = write_tsv(table, func / "sub-01_task-rest_desc-confounds_timeseries.tsv")
    if with_json:
        write_json(metadata, func / "sub-01_task-rest_desc-confounds_timeseries.json")
    return func / "sub-01_task-rest_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.nii.gz", tsv, table


@pytest.mark.parametrize("layout, combined", [("20.2", COMBINED_BEFORE_21), ("21", [f"a_comp_cor_{k:02d}"
                                                                                   for k in range(5)])])
def test_acompcor_takes_the_combined_mask_components_and_the_cosines(tmp_path, rng, layout, combined):
    _, tsv, table = write_fmriprep(tmp_path, rng, layout)
    selected = load_strategy_confounds(tsv, CleaningParams(strategy="aCompCor", n_compcor=3))
    assert sorted(selected.columns) == sorted(MOTION_DERIVATIVES + combined[:3] + COSINES)
    every = load_strategy_confounds(tsv, CleaningParams(strategy="aCompCor", n_compcor=10))  # the file has fewer
    assert sorted(every.columns) == sorted(MOTION_DERIVATIVES + combined + COSINES)
    # Values are the file's; the first row's n/a (derivatives) takes the second row's value.
    column = combined[1]
    assert np.allclose(every[column], table[column], atol=1e-8)
    assert every["trans_x_derivative1"].iloc[0] == every["trans_x_derivative1"].iloc[1]
    assert every.notna().all().all() and len(every) == N_VOLUMES
    with_gsr = load_strategy_confounds(tsv, CleaningParams(strategy="aCompCor", global_signal=True, n_compcor=3))
    assert set(with_gsr.columns) - set(selected.columns) == {"global_signal", "global_signal_derivative1"}


def test_same_selection_as_nilearn_on_the_fmriprep_folder(tmp_path, rng):
    from nilearn.interfaces.fmriprep import load_confounds

    bold, tsv, _ = write_fmriprep(tmp_path, rng, "20.2")
    for strategy in ("6P", "8P", "24P", "36P", "aCompCor"):
        arguments = confound_arguments(strategy, global_signal=True, n_compcor=4)
        direct, _ = load_confounds(str(bold), demean=False, **arguments)  # nilearn finds the files from the BOLD
        ours = load_strategy_confounds(tsv, CleaningParams(strategy=strategy, global_signal=True, n_compcor=4))
        pd.testing.assert_frame_equal(ours, direct.astype(float))


def test_regressor_counts_of_every_strategy(tmp_path, rng):
    _, tsv, _ = write_fmriprep(tmp_path, rng, "21")
    counts = {(s, g): 0 if (x := load_strategy_confounds(tsv, CleaningParams(strategy=s, global_signal=g,
                                                                                n_compcor=5))) is None else x.shape[1]
              for s in ("none", "6P", "8P", "24P", "36P", "aCompCor") for g in (False, True)}
    assert counts == {("none", False): 0, ("none", True): 1, ("6P", False): 6, ("6P", True): 7,
                      ("8P", False): 8, ("8P", True): 9,
                      ("24P", False): 24, ("24P", True): 28, ("36P", False): 32, ("36P", True): 36,
                      ("aCompCor", False): 12 + 5 + 4, ("aCompCor", True): 12 + 5 + 4 + 2}
    p36 = load_strategy_confounds(tsv, CleaningParams(strategy="36P", global_signal=True))
    assert sorted(p36.columns) == sorted(expansions(MOTION_COLUMNS + ["csf", "white_matter", "global_signal"]))
    p9 = load_strategy_confounds(tsv, CleaningParams(strategy="8P", global_signal=True))  # Ciric et al.'s 9P
    assert sorted(p9.columns) == sorted(MOTION_COLUMNS + ["csf", "white_matter", "global_signal"])


def test_nilearn_censors_nothing_connex_censors_by_fd(tmp_path, rng, caplog):
    bold, tsv, _ = write_fmriprep(tmp_path, rng, "21")
    with caplog.at_level(logging.WARNING):
        selected = load_strategy_confounds(tsv, CleaningParams(strategy="36P"))
    assert len(selected) == N_VOLUMES  # every volume, the sample mask ignored
    assert not any("outlier" in column for column in selected.columns)
    assert "1 volume(s) flagged non_steady_state_outlier" in caplog.text
    sidecar = tmp_path / "bold.json"
    sidecar.write_text(json.dumps({"RepetitionTime": 2.0}))
    result = run_censoring(confounds=str(tsv), sidecar=str(sidecar), bold=str(bold), out_tsv=str(tmp_path / "o.tsv"),
                           out_json=str(tmp_path / "o.json"), params=CleaningParams(strategy="aCompCor",
                                                                                      min_clean_seconds=60))
    assert np.flatnonzero(~result.keep).tolist() == [30, 31]


def test_acompcor_needs_the_json_and_a_combined_mask(tmp_path, rng):
    _, tsv, _ = write_fmriprep(tmp_path, rng, "20.2", with_json=False)
    assert load_strategy_confounds(tsv, CleaningParams(strategy="24P")).shape[1] == 24  # no JSON needed
    with pytest.raises(BIDSError, match=r"desc-confounds_timeseries.tsv: confound strategy 'aCompCor'.*"
                                        r"JSON sidecar sub-01_task-rest_desc-confounds_timeseries.json"):
        load_strategy_confounds(tsv, CleaningParams(strategy="aCompCor"))
    table, metadata = fmriprep_confounds(rng, "20.2")
    for name in COMBINED_BEFORE_21:
        metadata[name]["Mask"] = "WM"
    with pytest.raises(BIDSError, match="No aCompCor component has Mask 'combined'"):
        select_confounds(table, CleaningParams(strategy="aCompCor"), "x.tsv", metadata=metadata)


@pytest.fixture
def own_confounds(rng):
    """ConneX's confounds of a small synthetic run: 100 volumes at TR 2 s (200 s)."""
    shape = (12, 12, 12)
    wm, csf, brain = np.zeros(shape, bool), np.zeros(shape, bool), np.zeros(shape, bool)
    wm[2:6, 2:10, 2:10], csf[8:10, 4:8, 4:8], brain[1:11, 1:11, 1:11] = True, True, True
    data = 1000 + rng.normal(0, 2, shape + (N_VOLUMES,))
    data[wm] += rng.normal(0, 5, N_VOLUMES)
    data[csf] += rng.normal(0, 8, N_VOLUMES)
    series = BoldSeries(data=data.astype(np.float32), affine=np.eye(4), repetition_time=2.0, slice_timing=None,
                        slice_axis=2, source="test")
    motion = np.cumsum(rng.normal(0, 0.02, (N_VOLUMES, 6)), axis=0)
    return compute_confounds(series, motion, TissueMasks(brain=brain, white_matter=wm, csf=csf), n_compcor=5)


def test_own_confounds_have_fmriprep_compcor_metadata_and_cosines(own_confounds):
    table, metadata = own_confounds
    compcor = [f"a_comp_cor_{k:02d}" for k in range(5)]
    cosines = [c for c in table.columns if c.startswith("cosine_")]
    assert cosines == ["cosine_00", "cosine_01"]  # floor(2 * 100 * 2 / 128) = 3 terms, less the constant
    n = np.arange(N_VOLUMES)
    for k, name in enumerate(cosines, start=1):  # DCT-II, nipype's (and so fMRIPrep's) high-pass basis
        assert np.allclose(table[name], np.sqrt(2 / N_VOLUMES) * np.cos(np.pi / N_VOLUMES * (n + 0.5) * k))
    for name in compcor:
        assert metadata[name]["Mask"] == "combined" and metadata[name]["Method"] == "aCompCor"
        assert metadata[name]["Retained"] is True and 0 < metadata[name]["VarianceExplained"] < 1
    dropped = [name for name in metadata if name.startswith("dropped_")]
    assert dropped and not any(metadata[name]["Retained"] for name in dropped)
    cumulative = {name: entry["CumulativeVarianceExplained"] for name, entry in metadata.items()}
    assert cumulative["dropped_0"] > cumulative["a_comp_cor_04"] > cumulative["a_comp_cor_00"]


def test_own_confounds_pass_through_the_same_path(tmp_path, own_confounds):
    from nilearn.interfaces.fmriprep import load_confounds

    table, metadata = own_confounds
    func = tmp_path / "sub-01" / "func"  # ConneX's names (connex.inputs.paths), as the workflow writes them
    tsv = write_tsv(table, func / "sub-01_task-rest_desc-confounds_timeseries.tsv")
    write_json(metadata, func / "sub-01_task-rest_desc-confounds_timeseries.json")
    params = CleaningParams(strategy="aCompCor", n_compcor=5)
    selected = load_strategy_confounds(tsv, params)
    expected = MOTION_DERIVATIVES + [f"a_comp_cor_{k:02d}" for k in range(5)] + ["cosine_00", "cosine_01"]
    assert sorted(selected.columns) == sorted(expected)
    pd.testing.assert_frame_equal(select_confounds(table, params, "memory", metadata=metadata), selected)
    # nilearn also finds this file from ConneX's preprocessed BOLD name beside it.
    direct, _ = load_confounds(str(func / "sub-01_task-rest_space-bold_desc-preproc_bold.nii.gz"), demean=False,
                               **confound_arguments("aCompCor", n_compcor=5))
    pd.testing.assert_frame_equal(direct.astype(float), selected)
    p36 = load_strategy_confounds(tsv, CleaningParams(strategy="36P", global_signal=True))
    assert p36.shape == (N_VOLUMES, 36)
