"""Outputs are written whole or not at all."""

import json

import pandas as pd
import pytest

from connex.inputs.io import atomic_path, write_tsv


def test_failed_write_leaves_neither_target_nor_temporary_file(tmp_path):
    target = tmp_path / "sub-01_relmat.tsv"
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_temporary_file_of_a_killed_run_is_removed_when_the_target_is_written_again(tmp_path):
    target = tmp_path / "sub-01_relmat.tsv"
    stale = tmp_path / ".sub-01_relmat.tsv.k3j9x.tsv"  # what SIGKILL leaves mid-write
    other = tmp_path / ".sub-02_relmat.tsv.a1b2c.tsv"  # another target's: not ours to remove
    stale.write_text("half a tab")
    other.write_text("in progress")
    write_tsv(pd.DataFrame({"a": [1.5]}), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, target.name]
    assert pd.read_csv(target, sep="\t")["a"].tolist() == [1.5]


def test_sources_are_written_as_bids_uris_of_the_datasets_they_are_in(tmp_path):
    from connex.inputs.bids import write_derivatives_description
    from connex.inputs.io import write_json

    raw, out = tmp_path / "bids", tmp_path / "results" / "connex"
    nested = raw / "derivatives" / "connex"  # derivatives inside the raw dataset's derivatives/
    for folder in (raw, out, nested):
        folder.mkdir(parents=True)
    (raw / "dataset_description.json").write_text('{"Name": "raw", "BIDSVersion": "1.10.0"}')
    for derivatives in (out, nested):
        write_derivatives_description(target=derivatives / "dataset_description.json", bids_dir=raw)
    t1w = raw / "sub-01" / "anat" / "sub-01_T1w.nii.gz"
    sources = [str(t1w), out / "sub-01" / "anat" / "sub-01_desc-brain_mask.nii.gz", "/elsewhere/atlas.nii.gz",
               "bids:raw:sub-01/dwi/sub-01_dwi.nii.gz"]
    written = json.loads(write_json({"Sources": sources, "Other": [str(t1w)]},
                                    out / "sub-01" / "anat" / "sub-01_desc-preproc_T1w.json").read_text())
    assert written["Sources"] == ["bids:raw:sub-01/anat/sub-01_T1w.nii.gz",
                                  "bids::sub-01/anat/sub-01_desc-brain_mask.nii.gz",
                                  "/elsewhere/atlas.nii.gz", "bids:raw:sub-01/dwi/sub-01_dwi.nii.gz"]
    assert written["Other"] == [str(t1w)]  # only Sources
    inner = json.loads(write_json({"Sources": [nested / "sub-01" / "x.nii.gz", t1w]},
                                  nested / "sub-01" / "x.json").read_text())
    assert inner["Sources"] == ["bids::sub-01/x.nii.gz", "bids:raw:sub-01/anat/sub-01_T1w.nii.gz"]
    outside = json.loads(write_json({"Sources": [t1w]}, tmp_path / "x.json").read_text())
    assert outside["Sources"] == [str(t1w)]  # no dataset around the target: paths as they are
