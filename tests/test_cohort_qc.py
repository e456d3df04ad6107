"""The cohort QC table: values read from the stages' sidecars, outliers flagged."""

import json

import numpy as np
import pytest

from connex.report.cohort_qc import cohort_qc_table, qc_sidecars, sidecars_written, written_sidecars


def write_subject(root, subject, *, fd=0.2, streamlines=40000, missing=(), dwi=True, kept=290, translation=0.0,
                  excluded=None, session=None):
    files = qc_sidecars(root, subject, atlas="synth", task="rest", session=session)
    content = {
        "anat_registration": {"template_correlation": 0.86, "brain_volume_ml": 1500 + int(subject)},
        "anat_atlas": {"MissingRegions": list(missing)},
        "dwi_preproc": {"b0_t1w_correlation": 0.4, "max_translation_mm": translation, "median_fa_in_mask": 0.2},
        "dwi_tractography": {"streamlines_kept": streamlines},
        "dwi_connectome": {"fraction_assigned": 0.5, "RegionsWithoutVoxels": []},
        "bold_preproc": {"bold_t1w_correlation": 0.5},
        "bold_censoring": {"MeanFramewiseDisplacement": fd, "VolumesKept": kept, "VolumesTotal": 300,
                           "Included": excluded is None, "Reason": excluded or ""},
        "bold_connectome": {"RegionsWithoutSignal": []},
    }
    for stage, path in files.items():
        if not dwi and stage.startswith("dwi"):
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content[stage]))
    return files


def test_fixed_limits_robust_outliers_and_missing_stages(tmp_path):
    sidecars = {f"sub-0{i}": write_subject(tmp_path, f"0{i}", streamlines=40000 + 500 * i) for i in range(1, 5)}
    sidecars["sub-05"] = write_subject(tmp_path, "05", fd=0.8, kept=120)       # moves: fixed limits
    sidecars["sub-06"] = write_subject(tmp_path, "06", streamlines=9000)       # far below the cohort
    sidecars["sub-07"] = write_subject(tmp_path, "07", missing=["L_R03"])      # atlas region lost
    sidecars["sub-08"] = write_subject(tmp_path, "08", dwi=False)              # no DWI: nothing to flag
    sidecars["sub-09"] = write_subject(tmp_path, "09", translation=1.5)        # under 3 mm, but all others 0
    table = cohort_qc_table(sidecars).set_index("participant_id")

    assert table.loc["sub-05", "mean_fd_mm"] == pytest.approx(0.8)
    assert table.loc["sub-05", "volumes_kept_fraction"] == pytest.approx(0.4)
    assert table.loc["sub-05", "flags"] == "mean FD 0.8 mm > 0.5 mm; BOLD volumes kept 0.4 < 0.5"
    assert table.loc["sub-06", "flags"] == "streamlines kept 9000: -42.2 robust SD from the cohort median 40250"
    assert table.loc["sub-07", "atlas_regions_missing"] == 1
    assert table.loc["sub-07", "flags"] == "atlas regions missing in T1w: 1"
    assert np.isnan(table.loc["sub-08", "streamlines"]) and table.loc["sub-08", "flags"] == ""
    # the MAD of a measure most share is 0: the mean absolute deviation stands in for it
    assert table.loc["sub-09", "flags"] == "DWI max translation 1.5 mm: +6.4 robust SD from the cohort median 0"
    assert (table.loc[["sub-01", "sub-02", "sub-03", "sub-04"], "flags"] == "").all()


def test_a_dataset_with_sessions_gets_one_row_per_visit(tmp_path):
    sidecars = {f"sub-01_ses-{v}": write_subject(tmp_path, "01", session=v, fd=fd)
                for v, fd in (("1", 0.2), ("2", 0.9))}
    sidecars["sub-02_ses-1"] = write_subject(tmp_path, "02", session="1")
    assert "ses-2" in str(sidecars["sub-01_ses-2"]["bold_censoring"])  # each visit's own sidecars
    table = cohort_qc_table(sidecars)
    assert table[["participant_id", "session"]].values.tolist() == [["sub-01", "1"], ["sub-01", "2"], ["sub-02", "1"]]
    assert table["mean_fd_mm"].tolist() == [0.2, 0.9, 0.2]
    assert table["flags"].tolist()[:2] == ["", "mean FD 0.9 mm > 0.5 mm"]


def test_robust_rule_waits_for_a_cohort_and_an_excluded_run_says_why(tmp_path):
    sidecars = {"sub-01": write_subject(tmp_path, "01"), "sub-02": write_subject(tmp_path, "02", streamlines=100),
                "sub-03": write_subject(tmp_path, "03", excluded="20 s of clean data is under the minimum of 120 s")}
    table = cohort_qc_table(sidecars).set_index("participant_id")
    assert (table.loc[["sub-01", "sub-02"], "flags"] == "").all()  # no median to stand out from
    assert table.loc["sub-03", "flags"] == "BOLD run excluded: 20 s of clean data is under the minimum of 120 s"


def test_sidecars_written_follow_the_stages_each_participant_went_through(tmp_path):
    stages = {"anat": {"01", "02", "03"}, "sc": {"01"}, "fc": {"01", "02"}, "fc_kept": {"01"}}
    every_stage = set(qc_sidecars(tmp_path, "01", atlas="a", task="t"))
    assert set(sidecars_written("01", **stages, fmriprep=False)) == every_stage
    assert all(sidecars_written("01", **stages, fmriprep=False).values())
    written = {stage for stage, made in sidecars_written("02", **stages, fmriprep=False).items() if made}
    assert written == {"anat_registration", "anat_atlas", "bold_preproc", "bold_censoring"}  # no DWI, run excluded
    written = {stage for stage, made in sidecars_written("02", **stages, fmriprep=True).items() if made}
    assert written == {"anat_registration", "anat_atlas", "bold_censoring"}  # fMRIPrep preprocessed the BOLD
    assert not any(sidecars_written("04", **stages, fmriprep=False).values())


def test_a_visit_with_two_runs_is_judged_on_both(tmp_path):
    """FD over all volumes of both runs, the share of all volumes kept, the worse coregistration,
    and a run left out by scrubbing named in the flags."""
    files = qc_sidecars(tmp_path, "01", atlas="synth", task="rest", bold_runs=["_run-1", "_run-2"])
    assert {"bold_censoring_run-1", "bold_censoring_run-2", "bold_preproc_run-2"} <= set(files)
    assert "task-rest_run-2" in files["bold_censoring_run-2"].name
    content = {"bold_preproc_run-1": {"bold_t1w_correlation": 0.6}, "bold_preproc_run-2": {"bold_t1w_correlation": 0.3},
               "bold_censoring_run-1": {"MeanFramewiseDisplacement": 0.2, "VolumesKept": 200, "VolumesTotal": 200,
                                        "Included": True},
               "bold_censoring_run-2": {"MeanFramewiseDisplacement": 0.8, "VolumesKept": 40, "VolumesTotal": 100,
                                        "Included": False, "Reason": "80 s of clean data is under 120 s"}}
    for stage, body in content.items():
        files[stage].parent.mkdir(parents=True, exist_ok=True)
        files[stage].write_text(json.dumps(body))
    written = sidecars_written("01", anat=set(), sc=set(), fc={"01"}, fc_kept={"01"}, fmriprep=False)
    kept = written_sidecars(files, written)
    assert set(kept) == {*content, "bold_connectome"}
    row = cohort_qc_table({"sub-01": kept}).iloc[0]
    assert row["mean_fd_mm"] == pytest.approx((0.2 * 200 + 0.8 * 100) / 300)
    assert row["volumes_kept_fraction"] == pytest.approx(240 / 300)
    assert row["bold_t1w_r"] == pytest.approx(0.3)
    assert row["flags"] == "BOLD run-2 excluded: 80 s of clean data is under 120 s"
