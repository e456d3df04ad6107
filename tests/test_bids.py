"""Every user-facing input error of the BIDS stage, and the availability table."""

import gzip
import json
import logging
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from connex.errors import BIDSError, ConfigError
from connex.inputs.bids import build_inventory, read_inventory, read_participants
from connex.inputs.checks import check_bold, check_dwi, check_nifti, check_t1w, read_gradients, read_sidecar
from connex.inputs.io import write_tsv
from tests.conftest import REAL_BIDS


def dwi_of(bids, subject="01"):
    return bids / f"sub-{subject}" / "dwi" / f"sub-{subject}_dwi.nii.gz"


def bold_of(bids, subject="01"):
    return bids / f"sub-{subject}" / "func" / f"sub-{subject}_task-rest_bold.nii.gz"


def edit_participants(bids, edit):
    table = pd.read_csv(bids / "participants.tsv", sep="\t", dtype=str, keep_default_na=False)
    write_tsv(edit(table), bids / "participants.tsv")


# ----------------------------------------------------------------------- participants.tsv

def test_participants_without_label_column(tiny_bids):
    edit_participants(tiny_bids, lambda t: t.drop(columns="diagnosis"))
    with pytest.raises(BIDSError, match=r"participants.tsv: no 'diagnosis' column"):
        read_participants(tiny_bids)


def test_label_outside_declared_classes_names_participant(tiny_bids):
    edit_participants(tiny_bids, lambda t: t.assign(diagnosis=["HC", "BP", "SZ"]))
    with pytest.raises(BIDSError, match=r"outside the declared classes \['HC', 'SZ'\]: sub-02='BP'"):
        read_participants(tiny_bids)


def test_other_classes_and_label_column_from_config(tiny_bids):
    edit_participants(tiny_bids, lambda t: t.assign(group=["ctl", "pat", "n/a"]))
    table = read_participants(tiny_bids, label_column="group", classes=("ctl", "pat"))
    assert table["label"].tolist()[:2] == ["ctl", "pat"]
    assert pd.isna(table["label"].iloc[2])


def test_duplicate_participant(tiny_bids):
    edit_participants(tiny_bids, lambda t: pd.concat([t, t.iloc[[1]]]))
    with pytest.raises(BIDSError, match=r"duplicate participant_id \['sub-02'\]"):
        read_participants(tiny_bids)


def test_missing_participants_file(tiny_bids):
    (tiny_bids / "participants.tsv").unlink()
    with pytest.raises(BIDSError, match="participants.tsv: not found"):
        read_participants(tiny_bids)


def test_participant_id_without_prefix(tiny_bids):
    edit_participants(tiny_bids, lambda t: t.assign(participant_id=["01", "sub-02", "sub-03"]))
    with pytest.raises(BIDSError, match=r"must start with 'sub-'; got \['01'\]"):
        read_participants(tiny_bids)


# ---------------------------------------------------------------------------------- NIfTI

def test_nifti_that_is_not_gzipped(tiny_bids):
    dwi = dwi_of(tiny_bids)
    raw = gzip.decompress(dwi.read_bytes())
    dwi.write_bytes(raw)  # plain NIfTI bytes under a .nii.gz name
    with pytest.raises(BIDSError, match=r"sub-01_dwi.nii.gz: not a gzipped file"):
        check_nifti(dwi)


def test_truncated_nifti(tiny_bids):
    bold = bold_of(tiny_bids)
    raw = gzip.decompress(bold.read_bytes())
    bold.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    with pytest.raises(BIDSError, match=r"sub-01_task-rest_bold.nii.gz: truncated or corrupt"):
        check_nifti(bold)


def test_garbage_file_is_not_nifti(tiny_bids):
    t1w = tiny_bids / "sub-01" / "anat" / "sub-01_T1w.nii.gz"
    t1w.write_bytes(gzip.compress(b"this is not an image" * 10))
    with pytest.raises(BIDSError, match=r"sub-01_T1w.nii.gz: not a valid NIfTI image"):
        check_nifti(t1w)


# ------------------------------------------------------------------------------------ DWI

def test_missing_bval(tiny_bids):
    dwi_of(tiny_bids).with_name("sub-01_dwi.bval").unlink()
    with pytest.raises(BIDSError, match=r"sub-01_dwi.bval: missing"):
        check_dwi(dwi_of(tiny_bids))


def test_unreadable_bvec(tiny_bids):
    dwi_of(tiny_bids).with_name("sub-01_dwi.bvec").write_text("x y z\n1 2 3\n")
    with pytest.raises(BIDSError, match=r"sub-01_dwi.bvec: unreadable"):
        check_dwi(dwi_of(tiny_bids))


def test_bvec_with_wrong_number_of_rows(tiny_bids):
    bvec = dwi_of(tiny_bids).with_name("sub-01_dwi.bvec")
    rows = bvec.read_text().splitlines()
    bvec.write_text("\n".join(rows[:2]) + "\n")
    with pytest.raises(BIDSError, match=r"sub-01_dwi.bvec: expected 3 rows"):
        check_dwi(dwi_of(tiny_bids))


def test_bval_count_differs_from_volumes(tiny_bids):
    bval = dwi_of(tiny_bids).with_name("sub-01_dwi.bval")
    bval.write_text(bval.read_text().split(" ", 1)[1])  # one value fewer
    n_volumes = nib.load(dwi_of(tiny_bids)).shape[3]
    with pytest.raises(BIDSError, match=rf"{n_volumes} volumes, but sub-01_dwi.bval has {n_volumes - 1} values"):
        check_dwi(dwi_of(tiny_bids))


def test_gradients_are_returned_per_volume(tiny_cohort):
    n_volumes = nib.load(dwi_of(tiny_cohort)).shape[3]
    bvals, bvecs = read_gradients(dwi_of(tiny_cohort), n_volumes)
    assert bvals.shape == (n_volumes,) and bvecs.shape == (n_volumes, 3)


# ----------------------------------------------------------------------------------- BOLD

def test_three_dimensional_bold(tiny_bids):
    bold = bold_of(tiny_bids)
    image = nib.load(bold)
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[..., 0], image.affine), bold)
    with pytest.raises(BIDSError, match=r"sub-01_task-rest_bold.nii.gz: BOLD must be a 4-D time series; got a 3-D"):
        check_bold(bold, tiny_bids)


def test_bold_without_repetition_time(tiny_bids):
    sidecar = bold_of(tiny_bids).with_name("sub-01_task-rest_bold.json")
    metadata = json.loads(sidecar.read_text())
    del metadata["RepetitionTime"]
    sidecar.write_text(json.dumps(metadata))
    with pytest.raises(BIDSError, match=r"sub-01_task-rest_bold.nii.gz: no valid 'RepetitionTime'"):
        check_bold(bold_of(tiny_bids), tiny_bids)


def test_repetition_time_inherited_from_dataset_root(tiny_bids):
    sidecar = bold_of(tiny_bids).with_name("sub-01_task-rest_bold.json")
    metadata = json.loads(sidecar.read_text())
    del metadata["RepetitionTime"]
    sidecar.write_text(json.dumps(metadata))
    (tiny_bids / "task-rest_bold.json").write_text(json.dumps({"RepetitionTime": 2.5}))
    assert read_sidecar(bold_of(tiny_bids), bids_dir=tiny_bids)["RepetitionTime"] == 2.5
    assert check_bold(bold_of(tiny_bids), tiny_bids)["repetition_time"] == 2.5


# ------------------------------------------------------------------------------ inventory

def test_inventory_of_a_complete_cohort(tiny_cohort):
    table = build_inventory(tiny_cohort)
    assert table["participant_id"].tolist() == ["sub-01", "sub-02", "sub-03"]
    assert table[["use_anat", "use_sc", "use_fc", "use_model"]].all().all()
    assert table["reason"].isna().all()
    assert table.loc[0, "dwi"] == "sub-01/dwi/sub-01_dwi.nii.gz"


def test_subject_without_dwi_is_left_out_of_sc_only(tiny_bids, caplog):
    for f in (tiny_bids / "sub-02" / "dwi").iterdir():
        f.unlink()
    with caplog.at_level(logging.WARNING):
        table = build_inventory(tiny_bids).set_index("participant_id")
    assert not table.at["sub-02", "use_sc"] and table.at["sub-02", "use_fc"]
    assert table.at["sub-02", "use_model"]
    assert "no DWI series" in table.at["sub-02", "reason"]
    assert "sub-02: no DWI series" in caplog.text


def test_non_unit_bvec_and_b0_only_series(tiny_bids):
    bvec = dwi_of(tiny_bids).with_name("sub-01_dwi.bvec")
    vectors = np.loadtxt(bvec)
    weighted = int(np.flatnonzero(np.loadtxt(bvec.with_suffix(".bval")) > 50)[-1])
    vectors[:, weighted] *= 0.5
    np.savetxt(bvec, vectors)
    n_volumes = vectors.shape[1]
    with pytest.raises(BIDSError, match=rf"sub-01_dwi.nii.gz: the .bvec vectors .* volumes \[{weighted}\]"):
        check_dwi(dwi_of(tiny_bids))
    table = build_inventory(tiny_bids).set_index("participant_id")
    assert not table.at["sub-01", "use_sc"] and "must have unit length" in table.at["sub-01", "reason"]
    dwi_of(tiny_bids).with_name("sub-01_dwi.bval").write_text(" ".join(["5"] * n_volumes))
    with pytest.raises(BIDSError, match=r"sub-01_dwi.nii.gz: only b=0 volumes"):
        check_dwi(dwi_of(tiny_bids))


def test_bad_bvec_leaves_subject_out_or_stops_in_strict_mode(tiny_bids):
    dwi_of(tiny_bids, "03").with_name("sub-03_dwi.bvec").unlink()
    table = build_inventory(tiny_bids).set_index("participant_id")
    assert not table.at["sub-03", "use_sc"]
    assert "sub-03_dwi.bvec: missing" in table.at["sub-03", "reason"]
    with pytest.raises(BIDSError, match="sub-03_dwi.bvec: missing"):
        build_inventory(tiny_bids, strict=True)


def test_participant_without_folder_and_folder_without_participant(tiny_bids, caplog):
    edit_participants(tiny_bids, lambda t: pd.concat([t.iloc[1:], pd.DataFrame(
        [{"participant_id": "sub-99", "diagnosis": "HC", "site": "S1", "age": "30", "sex": "F"}])]))
    with caplog.at_level(logging.WARNING):
        table = build_inventory(tiny_bids).set_index("participant_id")
    assert "no folder" in table.at["sub-99", "reason"] and not table.at["sub-99", "use_anat"]
    assert "not in participants.tsv" in table.at["sub-01", "reason"]
    assert table.at["sub-01", "use_sc"] and not table.at["sub-01", "use_model"]
    assert "sub-99: listed in participants.tsv but there is no folder" in caplog.text


def test_include_exclude_and_missing_task(tiny_cohort):
    table = build_inventory(tiny_cohort, include=["01", "sub-02"], exclude=["02"], task="nback")
    assert table["participant_id"].tolist() == ["sub-01"]
    assert not table.loc[0, "use_fc"]
    assert "no BOLD series of task 'nback'" in table.loc[0, "reason"]
    assert "found task rest" in table.loc[0, "reason"]


def test_inventory_round_trip(tiny_cohort, tmp_path):
    table = build_inventory(tiny_cohort, exclude=["03"])
    write_tsv(table, tmp_path / "availability.tsv")
    again = read_inventory(tmp_path / "availability.tsv")
    assert again["use_sc"].tolist() == [True, True]
    assert again["participant_id"].tolist() == ["sub-01", "sub-02"]


@pytest.mark.skipif(not REAL_BIDS.is_dir(), reason="../shared/data/bids-xa30 is not beside the checkout")
def test_real_scanner_dataset():
    """bids-xa30: two DWI runs, a task-fa BOLD of 20 volumes, diagnosis n/a."""
    table = build_inventory(REAL_BIDS, task="fa")
    row = table.iloc[0]
    assert row["participant_id"] == "sub-01" and row["site"] == "IU"
    assert row["dwi"].split(";") == ["sub-01/dwi/sub-01_dir-AP_dwi.nii.gz", "sub-01/dwi/sub-01_dir-PA_dwi.nii.gz"]
    assert row["use_sc"] and row["use_fc"] and not row["use_model"]
    assert "label is n/a" in row["reason"]
    assert check_bold(REAL_BIDS / row["bold"], REAL_BIDS) == {"n_volumes": 20, "repetition_time": 1.0}
    rest = build_inventory(REAL_BIDS).iloc[0]
    assert not rest["use_fc"] and "found task fa" in rest["reason"]


def test_sessions_are_found_one_row_each(tiny_bids):
    """A participant with two sessions gets one availability row per session."""
    subject = tiny_bids / "sub-01"
    for session in ("1", "2"):
        for datatype in ("anat", "dwi", "func"):
            target = subject / f"ses-{session}" / datatype
            target.mkdir(parents=True)
            for f in (subject / datatype).iterdir():
                (target / f.name.replace("sub-01_", f"sub-01_ses-{session}_")).write_bytes(f.read_bytes())
    for datatype in ("anat", "dwi", "func"):
        for f in (subject / datatype).iterdir():
            f.unlink()
        (subject / datatype).rmdir()
    (subject / "ses-2" / "dwi" / "sub-01_ses-2_dwi.bval").unlink()
    table = build_inventory(tiny_bids)
    rows = table[table["participant_id"] == "sub-01"].set_index("session")
    assert rows.index.tolist() == ["1", "2"]
    assert rows.at["1", "dwi"] == "sub-01/ses-1/dwi/sub-01_ses-1_dwi.nii.gz"
    assert rows.at["1", "use_sc"] and not rows.at["2", "use_sc"] and rows.at["2", "use_fc"]
    assert "sub-01_ses-2_dwi.bval: missing" in rows.at["2", "reason"]


def test_a_session_without_t1w_uses_the_first_session_with_one(tiny_sessions_cohort, tmp_path):
    """Longitudinal data often have one T1w: ses-2 borrows ses-1's; a participant without ses-
    folders in a dataset with sessions is left out with the reason, not mixed in."""
    bids = Path(shutil.copytree(tiny_sessions_cohort, tmp_path / "bids"))
    for f in (bids / "sub-02" / "ses-2" / "anat").iterdir():
        f.unlink()
    flat = bids / "sub-03" / "anat"
    flat.mkdir(parents=True)
    shutil.copy(bids / "sub-01" / "ses-1" / "anat" / "sub-01_ses-1_T1w.nii.gz", flat / "sub-03_T1w.nii.gz")
    participants = pd.read_csv(bids / "participants.tsv", sep="\t")
    participants.loc[2] = ["sub-03", "HC", "S1", 30.0, "F"]
    participants.to_csv(bids / "participants.tsv", sep="\t", index=False)
    table = build_inventory(bids)
    rows = table.set_index(["participant_id", "session"])
    assert rows.loc[("sub-02", "2"), "t1w"] == "sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz"
    assert rows.loc[("sub-02", "2"), "use_fc"] and rows.loc[("sub-02", "2"), "use_sc"]
    assert rows.loc[("sub-01", "2"), "t1w"] == "sub-01/ses-2/anat/sub-01_ses-2_T1w.nii.gz"
    flat_row = table[table["participant_id"] == "sub-03"].iloc[0]
    assert not flat_row["use_anat"]
    assert "has no ses- folder, while other participants have sessions" in flat_row["reason"]
    with pytest.raises(BIDSError, match="sub-03 has no ses- folder"):
        build_inventory(bids, strict=True)


# ------------------------------------------------------------------------- voxel checks

def rewrite(path, edit):
    """Rewrite a NIfTI with ``edit(data)`` applied, same header (dtype float32 when NaN are written)."""
    image = nib.load(path)
    data = np.asarray(image.dataobj).astype(np.float32)
    edit(data)
    header = image.header.copy()
    header.set_data_dtype(np.float32)
    nib.save(nib.Nifti1Image(data, image.affine, header), path)


def cut_in_half(path):
    """The careless copy: the first half of the .nii.gz bytes, as they are (no valid gzip end)."""
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def test_a_gzip_cut_in_half_is_caught_whatever_its_last_bytes(tiny_bids):
    bold = bold_of(tiny_bids)
    cut_in_half(bold)
    with pytest.raises(BIDSError, match=r"sub-01_task-rest_bold.nii.gz: truncated or corrupt .*a complete gzip"):
        check_bold(bold, tiny_bids)


def test_a_corrupted_byte_fails_the_crc(tiny_bids):
    t1w = tiny_bids / "sub-01" / "anat" / "sub-01_T1w.nii.gz"
    raw = bytearray(t1w.read_bytes())
    raw[-12] ^= 0xFF  # inside the deflate stream's end or the CRC: the lengths still agree
    t1w.write_bytes(bytes(raw))
    with pytest.raises(BIDSError, match=r"sub-01_T1w.nii.gz: truncated or corrupt"):
        check_t1w(t1w)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.fill(0), r"every voxel of every volume is 0 \(an empty image\); expected an image with contrast"),
    (lambda d: d.fill(7), r"every voxel .* is 7; expected an image with contrast"),
    (lambda d: d.__setitem__((1, 1, 1, 2), np.nan), r"1 NaN or Inf voxels in 1 of \d+ volumes \(2\)"),
    (lambda d: d.__setitem__((..., 3), np.nan), r"1 of \d+ volumes are entirely NaN or Inf \(3\)"),
    (lambda d: d.__setitem__((..., 4), 0), r"1 of \d+ volumes are constant \(4: blank or dropped volumes\)"),
])
def test_bold_voxel_problems_name_the_file_and_the_volumes(tiny_bids, edit, message):
    bold = bold_of(tiny_bids)
    rewrite(bold, edit)
    with pytest.raises(BIDSError, match=r"sub-01_task-rest_bold.nii.gz: " + message):
        check_bold(bold, tiny_bids)


def test_voxel_problems_leave_the_participant_out_of_what_needs_the_file(tiny_bids):
    rewrite(tiny_bids / "sub-01" / "anat" / "sub-01_T1w.nii.gz", lambda d: d.fill(0))
    rewrite(bold_of(tiny_bids, "02"), lambda d: d.__setitem__((..., 0), np.inf))
    table = build_inventory(tiny_bids).set_index("participant_id")
    assert not table.loc["sub-01", "use_anat"] and not table.loc["sub-01", "use_sc"]
    assert "sub-01_T1w.nii.gz: every voxel" in table.loc["sub-01", "reason"]
    assert table.loc["sub-02", "use_sc"] and not table.loc["sub-02", "use_fc"]
    assert "sub-02_task-rest_bold.nii.gz" in table.loc["sub-02", "reason"]
    with pytest.raises(BIDSError, match="sub-01_T1w.nii.gz: every voxel"):
        build_inventory(tiny_bids, strict=True)


@pytest.mark.skipif(not REAL_BIDS.is_dir(), reason="needs ../shared/data/bids-xa30")
@pytest.mark.parametrize("relative, expected", [
    ("anat/sub-01_T1w.nii.gz", "truncated or corrupt"),
    ("dwi/sub-01_dir-AP_dwi.nii.gz", "truncated or corrupt"),
    ("func/sub-01_task-fa_bold.nii.gz", "truncated or corrupt"),
])
def test_broken_copies_of_the_real_volunteer_are_caught(tmp_path, relative, expected):
    import shutil

    bids = Path(shutil.copytree(REAL_BIDS, tmp_path / "bids"))
    cut_in_half(bids / "sub-01" / relative)
    row = build_inventory(bids, task="fa").iloc[0]
    assert f"{Path(relative).name}: {expected}" in row["reason"]
    modality = {"anat": "use_anat", "dwi": "use_sc", "func": "use_fc"}[relative.split("/")[0]]
    assert not row[modality] or relative.startswith("dwi")  # one DWI run of two left: see dwi_partial


def test_participant_labels_are_checked_before_any_path_is_built(tiny_bids):
    edit_participants(tiny_bids, lambda t: t.replace({"participant_id": {"sub-01": "sub-../../etc"}}))
    with pytest.raises(BIDSError, match=r"participants.tsv: participant_id values must be BIDS labels, 'sub-' "
                                        r"followed by letters and digits only; got \['sub-../../etc'\]"):
        build_inventory(tiny_bids)


def test_a_folder_that_is_not_a_bids_label_is_left_out_with_the_reason(tiny_bids):
    (tiny_bids / "sub-02_copy").mkdir()
    table = build_inventory(tiny_bids).set_index("participant_id")
    assert not table.loc["sub-02_copy", "use_anat"]
    assert "folder 'sub-02_copy'" in table.loc["sub-02_copy", "reason"] and "letters and digits" in \
        table.loc["sub-02_copy", "reason"]
    with pytest.raises(BIDSError, match="'sub-02_copy' .* not a valid BIDS participant label"):
        build_inventory(tiny_bids, strict=True)


def test_a_partial_dwi_set_leaves_sc_out_or_uses_the_other_runs(tiny_bids, caplog):
    import shutil

    dwi = dwi_of(tiny_bids)
    second = dwi.with_name(dwi.name.replace("_dwi", "_run-2_dwi"))
    for ext in (".nii.gz", ".bval", ".bvec"):
        shutil.copy(str(dwi).replace(".nii.gz", ext), str(second).replace(".nii.gz", ext))
    str_bvec = str(second).replace(".nii.gz", ".bvec")
    Path(str_bvec).unlink()
    row = build_inventory(tiny_bids).set_index("participant_id").loc["sub-01"]
    assert not row["use_sc"] and row["use_fc"]
    assert "sub-01_run-2_dwi" in row["reason"] and "SC is left out (partial_dwi: exclude" in row["reason"]
    row = build_inventory(tiny_bids, partial_dwi="use_remaining").set_index("participant_id").loc["sub-01"]
    assert row["use_sc"] and row["dwi"] == "sub-01/dwi/sub-01_dwi.nii.gz"
    assert "SC from sub-01_dwi.nii.gz only; sub-01_run-2_dwi.nii.gz dropped" in caplog.text


def test_dwi_runs_of_different_acquisitions_are_not_combined(tiny_bids, caplog):
    """Two runs of one acquisition are combined; a second acquisition with fewer volumes is not
    (named on the console), unless dwi_acquisition chooses it; a label nobody has leaves SC out."""
    import shutil

    dwi = dwi_of(tiny_bids)
    n_volumes = nib.load(dwi).shape[3]
    pe_pair = dwi.with_name(dwi.name.replace("_dwi", "_dir-PA_dwi"))
    short = dwi.with_name(dwi.name.replace("sub-01_", "sub-01_acq-b1000_"))
    for target in (pe_pair, short):
        for ext in (".nii.gz", ".bval", ".bvec"):
            shutil.copy(str(dwi).replace(".nii.gz", ext), str(target).replace(".nii.gz", ext))
    image = nib.load(short)  # fewer volumes than the two runs without acq-
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[..., :n_volumes - 2], image.affine, image.header), short)
    for ext in (".bval", ".bvec"):
        table = np.loadtxt(str(dwi).replace(".nii.gz", ext), ndmin=2)  # (1 or 3, volumes)
        np.savetxt(str(short).replace(".nii.gz", ext), table[:, :n_volumes - 2], fmt="%g")
    row = build_inventory(tiny_bids).set_index("participant_id").loc["sub-01"]
    assert row["use_sc"] and row["dwi"] == "sub-01/dwi/sub-01_dir-PA_dwi.nii.gz;sub-01/dwi/sub-01_dwi.nii.gz"
    assert "DWI runs of 2 acquisitions (no acq-: 2 run(s), acq-b1000: 1 run(s))" in caplog.text
    assert "not used: sub-01_acq-b1000_dwi.nii.gz" in caplog.text
    row = build_inventory(tiny_bids, dwi_acquisition="b1000").set_index("participant_id").loc["sub-01"]
    assert row["use_sc"] and row["dwi"] == "sub-01/dwi/sub-01_acq-b1000_dwi.nii.gz"
    table = build_inventory(tiny_bids, dwi_acquisition="acq-multishell")
    row = table.set_index("participant_id").loc["sub-01"]
    assert not row["use_sc"] and row["use_fc"]
    expected = "no DWI run of acquisition acq-multishell (dwi_acquisition); found no acq-: 2 run(s), acq-b1000"
    assert expected in row["reason"]
    # per participant: a mapping (labels with or without sub-), 'default' for the others
    row = build_inventory(tiny_bids, dwi_acquisition={"01": "b1000"}).set_index("participant_id").loc["sub-01"]
    assert row["use_sc"] and row["dwi"] == "sub-01/dwi/sub-01_acq-b1000_dwi.nii.gz"
    table = build_inventory(tiny_bids, dwi_acquisition={"sub-02": "b1000", "default": None}).set_index("participant_id")
    assert table.loc["sub-01", "dwi"] == "sub-01/dwi/sub-01_dir-PA_dwi.nii.gz;sub-01/dwi/sub-01_dwi.nii.gz"
    assert not table.loc["sub-02", "use_sc"] and "no DWI run of acquisition acq-b1000" in table.loc["sub-02", "reason"]
    table = build_inventory(tiny_bids, dwi_acquisition={"default": "b1000"}).set_index("participant_id")
    assert table.loc["sub-01", "dwi"] == "sub-01/dwi/sub-01_acq-b1000_dwi.nii.gz"
    with pytest.raises(ConfigError, match=r"does not have: \['sub-99'\]"):
        build_inventory(tiny_bids, dwi_acquisition={"sub-99": "b1000"})
    with pytest.raises(ConfigError, match="names sub-01 twice"):
        build_inventory(tiny_bids, dwi_acquisition={"01": "b1000", "sub-01": None})
    with pytest.raises(ConfigError, match="quote labels such as '01'"):
        build_inventory(tiny_bids, dwi_acquisition={1: "b1000"})
    # a broken run of the acquisition not used does not take SC away (partial_dwi looks at the chosen one)
    Path(str(short).replace(".nii.gz", ".bvec")).unlink()
    row = build_inventory(tiny_bids).set_index("participant_id").loc["sub-01"]
    assert row["use_sc"] and row["dwi"] == "sub-01/dwi/sub-01_dir-PA_dwi.nii.gz;sub-01/dwi/sub-01_dwi.nii.gz"


def test_console_summary_names_what_is_left_out_and_why(tiny_bids):
    from connex.inputs.bids import console_summary

    cut_in_half(bold_of(tiny_bids, "02"))
    lines = console_summary(build_inventory(tiny_bids))
    assert len(lines) == 1
    assert lines[0].startswith("ConneX input check: sub-02: not used for FC: ")
    assert "sub-02_task-rest_bold.nii.gz: truncated or corrupt" in lines[0]
