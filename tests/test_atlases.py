"""The offline atlas registry and the checks every atlas passes."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from connex.anat.atlases import (
    BUILT_IN_ATLASES,
    atlas_positions,
    load_atlas,
    load_custom_atlas,
    read_atlas_regions,
    spheres_to_labels,
    validate_atlas,
)
from connex.anat.templates import load_mni_template
from connex.errors import AtlasError


@pytest.mark.parametrize("name, n_regions", [("desikankilliany", 83), ("dosenbach160", 160),
                                             ("power264", 264), ("seitzman300", 300)])
def test_built_in_atlases_load_offline_and_are_whole(name, n_regions):
    atlas = load_atlas(name)
    assert atlas.n_regions == n_regions and name in BUILT_IN_ATLASES
    assert atlas.table["index"].tolist() == list(range(1, n_regions + 1))
    counts = np.bincount(atlas.labels.ravel(), minlength=n_regions + 1)[1:]
    assert (counts > 0).all()  # no region lost on the template grid
    assert set(atlas.table["hemisphere"]) <= {"L", "R", "midline", "bilateral"}
    assert atlas.citation and atlas.source


def test_desikan_killiany_names_and_hemispheres():
    table = load_atlas("desikankilliany").table
    assert table.loc[0, "name"] == "L_bankssts"
    assert (table["network"] == "cortex").sum() == 68
    assert (table["hemisphere"] == "L").sum() == (table["hemisphere"] == "R").sum()


def test_spheres_exact_voxels_and_nearest_centre_wins():
    """Two radius-1 spheres 2 voxels apart on a 1 mm grid (7, 8, 9): 7 voxels each, but the
    voxel between them is 1 from both centres; ties go to the first, so 7 and 6."""
    mask = np.ones((7, 8, 9), dtype=bool)
    labels = spheres_to_labels(np.array([[2.0, 3.0, 4.0], [4.0, 3.0, 4.0]]), np.array([1.0, 1.0]), mask, np.eye(4))
    assert np.bincount(labels.ravel()).tolist() == [7 * 8 * 9 - 13, 7, 6]
    assert labels[3, 3, 4] == 1 and labels[4, 3, 4] == 2 and labels[5, 3, 4] == 2
    mask[2, 3, 4] = False  # the mask removes voxels, not whole spheres
    assert (spheres_to_labels(np.array([[2.0, 3.0, 4.0]]), np.array([1.0]), mask, np.eye(4)) == 1).sum() == 6


def small_atlas():
    template = load_mni_template(2)
    labels = np.zeros(template.gm.shape, dtype=np.int16)
    labels[30:40, 50:60, 40:50] = 1
    labels[60:70, 50:60, 40:50] = 2
    table = pd.DataFrame({"index": [1, 2], "name": ["left", "right"]})
    return labels, template.affine, table


def test_validate_accepts_a_good_atlas():
    labels, affine, table = small_atlas()
    checked, checked_table = validate_atlas(labels, affine, table, "ok.nii.gz")
    assert checked.dtype == np.int32 and checked_table["name"].tolist() == ["left", "right"]


def test_atlas_errors_name_the_file():
    labels, affine, table = small_atlas()
    with pytest.raises(AtlasError, match=r"bad.nii.gz: an atlas must be a 3-D label image"):
        validate_atlas(np.stack([labels, labels], -1), affine, table, "bad.nii.gz")
    with pytest.raises(AtlasError, match=r"bad.nii.gz: labels must be integers"):
        validate_atlas(labels + 0.5, affine, table, "bad.nii.gz")
    with pytest.raises(AtlasError, match=r"bad.nii.gz: the labels of the image and the table disagree: "
                                         r"in the image only \[2\], in the table only \[3\]"):
        validate_atlas(labels, affine, table.assign(index=[1, 3]), "bad.nii.gz")
    with pytest.raises(AtlasError, match=r"bad.nii.gz: the affine is not invertible"):
        validate_atlas(labels, np.diag([2.0, 2.0, 0.0, 1.0]), table, "bad.nii.gz")
    with pytest.raises(AtlasError, match=r"needs columns 'index' and 'name'"):
        validate_atlas(labels, affine, table.rename(columns={"name": "label"}), "bad.nii.gz")
    shifted = affine.copy()
    shifted[:3, 3] += 300.0
    with pytest.raises(AtlasError, match=r"bad.nii.gz: only 0% of its labelled voxels fall inside the MNI152 brain"):
        validate_atlas(labels, shifted, table, "bad.nii.gz")


def test_custom_atlas_from_files_and_unknown_names(tmp_path):
    labels, affine, table = small_atlas()
    nib.save(nib.Nifti1Image(labels, affine), tmp_path / "mine.nii.gz")
    table.to_csv(tmp_path / "mine.tsv", sep="\t", index=False)
    custom = {"mine": {"image": str(tmp_path / "mine.nii.gz"), "table": str(tmp_path / "mine.tsv")}}
    atlas = load_atlas("mine", custom=custom)
    assert atlas.n_regions == 2 and atlas.table["network"].isna().all()
    with pytest.raises(AtlasError, match=r"Unknown atlas 'aal'; built in: .*yours: \['mine'\]"):
        load_atlas("aal", custom=custom)
    with pytest.raises(AtlasError, match="letters and digits only"):
        load_custom_atlas("my-atlas", tmp_path / "mine.nii.gz", tmp_path / "mine.tsv")
    with pytest.raises(AtlasError, match=r"nothere.nii.gz: atlas image not found"):
        load_custom_atlas("x", tmp_path / "nothere.nii.gz", tmp_path / "mine.tsv")
    with pytest.raises(AtlasError, match="only for a synthetic cohort"):
        load_atlas("synth")


def test_mni_check_mask_read_without_nilearn_covers_the_template_brain():
    """The atlas-space check's mask (nilearn's 1 mm template file read with nibabel, 5 mm dilated)
    holds every voxel of nilearn's own 2 mm brain mask and about as much as its 6 mm dilation."""
    from connex.anat.atlases import dilated_mni_brain_mask
    from connex.anat.templates import load_mni_template

    mask, affine = dilated_mni_brain_mask()
    template = load_mni_template(2)
    centres = np.argwhere(template.brain_mask) @ template.affine[:3, :3].T + template.affine[:3, 3]
    ijk = np.round((centres - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T).astype(int)
    assert mask[tuple(ijk.T)].all()
    volume_ml = mask.sum() * abs(np.linalg.det(affine[:3, :3])) / 1000
    assert 2100 < volume_ml < 2450  # nilearn's brain 1883 ml; dilated 6 mm on the 2 mm grid 2334 ml


def test_the_region_table_written_beside_the_t1w_atlas_reads_back_as_the_atlas_regions(tmp_path):
    """The SC job reads the regions from atlas_to_t1w's table instead of loading the atlas image:
    the same indices, names and positions; a region named NA stays a name; a table without the
    columns names its file."""
    from connex.inputs.io import write_tsv

    atlas = load_atlas("desikankilliany")
    table = atlas.table.copy()
    table.loc[3, "name"] = "NA"
    write_tsv(table, tmp_path / "atlas_dseg.tsv")
    regions = read_atlas_regions(atlas.name, tmp_path / "atlas_dseg.tsv")
    assert regions.n_regions == 83 and regions.name == "desikankilliany"
    assert list(regions.table["name"]) == list(table["name"]) and regions.table.loc[3, "name"] == "NA"
    np.testing.assert_array_equal(atlas_positions(atlas.labels, regions), atlas_positions(atlas.labels, atlas))
    (tmp_path / "bad.tsv").write_text("label\tregion\n1\tx\n")
    with pytest.raises(AtlasError, match=r"bad\.tsv: expected the atlas table's 'index' and 'name'"):
        read_atlas_regions("x", tmp_path / "bad.tsv")
