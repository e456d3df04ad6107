from pathlib import Path

import pytest

from connex.inputs.paths import bids_name, bids_path, group_path


def test_entities_are_written_in_bids_order_whatever_the_call_order():
    name = bids_name(subject="01", suffix="relmat", extension=".tsv", desc="true", atlas="synth", task="rest",
                     meas="correlation")
    assert name == "sub-01_task-rest_atlas-synth_meas-correlation_desc-true_relmat.tsv"


def test_path_has_session_and_datatype_folders():
    path = bids_path("out", subject="01", datatype="dwi", suffix="dwi", extension=".nii.gz", session="2", space="T1w",
                     desc="preproc")
    assert path == Path("out/sub-01/ses-2/dwi/sub-01_ses-2_space-T1w_desc-preproc_dwi.nii.gz")


def test_from_keyword_and_wildcards():
    path = bids_path("d", subject="{subject}", datatype="anat", suffix="xfm", extension=".h5", from_="T1w", to="MNI",
                     mode="image")
    assert str(path) == "d/sub-{subject}/anat/sub-{subject}_from-T1w_to-MNI_mode-image_xfm.h5"


def test_none_entities_are_skipped_and_group_path():
    assert bids_name(subject="01", suffix="T1w", extension=".nii.gz", run=None) == "sub-01_T1w.nii.gz"
    assert group_path("res", "metrics.tsv") == Path("res/group/metrics.tsv")


def test_unknown_entity_and_bad_extension_are_errors():
    with pytest.raises(ValueError, match="Unknown BIDS entities"):
        bids_name(subject="01", suffix="T1w", extension=".nii.gz", colour="red")
    with pytest.raises(ValueError, match="must start with '.'"):
        bids_name(subject="01", suffix="T1w", extension="nii.gz")


def test_everything_after_the_root_is_named():
    with pytest.raises(TypeError):
        bids_path("out", "01", "dwi", "dwi", ".nii.gz")
    with pytest.raises(TypeError):
        bids_name("01", "T1w", ".nii.gz")


def test_a_visit_names_its_session_in_labels_and_wildcards():
    from connex.inputs.paths import Visit

    assert Visit("01").label == "sub-01" and Visit("01").wildcards == {"subject": "01"}
    visit = Visit("01", "2")
    assert visit.label == "sub-01_ses-2" and visit.wildcards == {"subject": "01", "session": "2"}
    pattern = Visit("{subject}", "{session}")
    path = bids_path("out", subject=pattern.subject, session=pattern.session, datatype="func", suffix="bold",
                     extension=".nii.gz", task="rest")
    assert str(path).format(**visit.wildcards) == "out/sub-01/ses-2/func/sub-01_ses-2_task-rest_bold.nii.gz"
