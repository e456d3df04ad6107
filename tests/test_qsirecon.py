"""SC connectomes from QSIRecon (1.x) and QSIPrep's reconstruction (0.x): their ``.mat`` files.

The fixtures write what these tools write, not what this project reads: per atlas and measure a
dict saved by ``scipy.io.savemat`` (``BuildConnectome._post_run_hook``, qsirecon/interfaces/mrtrix.py;
qsiprep/interfaces/mrtrix.py), then merged by ``loadmat`` and ``savemat(long_field_names=True,
do_compression=True)`` (``_merge_conmats``); QSIRecon's labels are the atlas TSV's ``label`` column
(an object array: a cell array), QSIPrep's ``np.array(node_names)`` (a char matrix).
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.io import loadmat, savemat

from connex.config import check_sc_weight
from connex.errors import ConfigError, ConnectomeError
from connex.model.dataset import atlas_relmats, build_dataset, detect_atlas, find_relmat, read_connectome
from connex.model.qsirecon import is_connectivity_mat, mat_atlases, parse_variables, read_connectivity_mat

SCHEMA = Path(__file__).resolve().parents[1] / "config" / "schema" / "config.schema.yaml"

#: QSIRecon 1.x's MRtrix3 measures (its built-in mrtrix_multishell_msmt_ACT-hsvs spec).
MEASURES = ("sift_invnodevol_radius2_count", "radius2_meanlength", "radius2_count", "sift_radius2_count")
#: Two atlases: ids not in sorted order (the file's order is the matrix's), unequal label lengths.
ATLASES = {
    "4S156Parcels": pd.DataFrame({"index": [3, 1, 2, 5, 4], "label": ["LH_Vis_1", "LH_SomMot_1", "RH_Vis_1",
                                                                        "Thal_L", "CEREB_R"]}),
    "AAL116": pd.DataFrame({"index": [1, 2, 3], "label": ["Precentral_L", "Precentral_R", "Frontal_Sup_L"]}),
}
QSIRECON_NAME = "sub-{s}_ses-{ses}_space-ACPC_connectivity.mat"
QSIPREP_NAME = "sub-{s}_space-T1w_desc-preproc_msmtconnectome.mat"


def sc_matrix(rng, n: int) -> np.ndarray:
    counts = rng.poisson(30, size=(n, n)).astype(float)
    return np.triu(counts, 1) + np.triu(counts, 1).T


def write_mat(path, rng, *, qsiprep: bool = False, atlases=ATLASES, measures=MEASURES, extra=None) -> dict:
    """A connectivity .mat as QSIRecon 1.x (``atlas_`` variables) or QSIPrep 0.x writes it;
    returns ``{(atlas, measure): matrix}``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    parts, matrices = [], {}
    for atlas, table in atlases.items():
        prefix = atlas if qsiprep else f"atlas_{atlas}"
        for measure in measures:
            matrix = sc_matrix(rng, len(table))
            part = path.parent / f"{atlas}_{measure}_connectivity.mat"  # the per-node file
            ids = np.array(table["index"]).astype(int) if qsiprep else table["index"].values
            labels = np.array(list(table["label"])) if qsiprep else table["label"].values
            content = {f"{prefix}_region_ids": ids, f"{prefix}_region_labels": labels,
                       f"{prefix}_{measure}_connectivity": matrix}
            if not qsiprep:
                content["command"] = f"tck2connectome tracks.tck {atlas}.mif connectome.csv"
            savemat(part, content, long_field_names=True)
            parts.append(part)
            matrices[atlas, measure] = matrix
    merged = {}
    for part in parts:
        merged.update(loadmat(part))
        part.unlink()
    merged.update(extra or {})
    savemat(path, merged, long_field_names=True, do_compression=True)
    return matrices


def qsirecon_folder(tmp_path, rng, labels=("HC", "SZ") * 3, sessions=("1",)):
    """A QSIRecon 1.x derivatives folder and a raw BIDS participants.tsv: ``(root, bids, matrices)``,
    matrices keyed by ``(participant_id, session, atlas, measure)``."""
    root, bids = tmp_path / "derivatives" / "qsirecon-MRtrix3_act-HSVS", tmp_path / "bids"
    bids.mkdir()
    ids = [f"sub-{i + 1:02d}" for i in range(len(labels))]
    pd.DataFrame({"participant_id": ids, "diagnosis": labels}).to_csv(bids / "participants.tsv", sep="\t",
                                                                      index=False)
    matrices = {}
    for pid in ids:
        for ses in sessions:
            path = root / pid / f"ses-{ses}" / "dwi" / QSIRECON_NAME.format(s=pid[4:], ses=ses)
            for key, matrix in write_mat(path, rng).items():
                matrices[(pid, ses, *key)] = matrix
    return root, bids, matrices


def test_qsirecon_matrix_is_read_in_the_files_region_order(tmp_path, rng):
    root, bids, matrices = qsirecon_folder(tmp_path, rng)
    dataset, table = build_dataset(root, atlas="4S156Parcels", sc_weight="sift_invnodevol_radius2_count",
                                   modalities=["sc"], participants_dir=bids)
    expected = matrices["sub-03", "1", "4S156Parcels", "sift_invnodevol_radius2_count"]
    assert dataset.sc.shape == (6, 5, 5) and table["included"].all()
    assert dataset.sc[2][0, 3] == expected[0, 3] and np.array_equal(dataset.sc[2], expected)
    assert dataset.regions == ["LH_Vis_1", "LH_SomMot_1", "RH_Vis_1", "Thal_L", "CEREB_R"]  # id order 3, 1, 2, 5, 4
    assert table.loc[2, "sc_file"].endswith("sub-03/ses-1/dwi/sub-03_ses-1_space-ACPC_connectivity.mat")
    other, _ = build_dataset(root, atlas="AAL116", sc_weight="RADIUS2_MEANLENGTH", modalities=["sc"],
                             participants_dir=bids)  # any case
    assert np.array_equal(other.sc[0], matrices["sub-01", "1", "AAL116", "radius2_meanlength"])
    assert other.regions == ["Precentral_L", "Precentral_R", "Frontal_Sup_L"]


def test_qsiprep_0x_file_without_atlas_prefix_and_char_labels(tmp_path, rng):
    path = tmp_path / "qsirecon" / "sub-01" / "dwi" / QSIPREP_NAME.format(s="01")
    matrices = write_mat(path, rng, qsiprep=True, atlases={"schaefer100x7": ATLASES["4S156Parcels"]})
    assert is_connectivity_mat(path) and list(mat_atlases(path)) == ["schaefer100x7"]
    assert find_relmat(tmp_path / "qsirecon", "01", "sc", atlas="schaefer100x7", meas="radius2_count") == path
    matrix, regions = read_connectome(path, atlas="schaefer100x7", measure="radius2_count")
    assert matrix[1, 4] == matrices["schaefer100x7", "radius2_count"][1, 4]
    assert regions == ["LH_Vis_1", "LH_SomMot_1", "RH_Vis_1", "Thal_L", "CEREB_R"]  # the char rows' padding dropped


def test_a_missing_atlas_or_measure_lists_what_the_file_holds(tmp_path, rng):
    root, bids, _ = qsirecon_folder(tmp_path, rng)
    with pytest.raises(ConnectomeError) as error:
        build_dataset(root, atlas="4S156Parcels", sc_weight="count", modalities=["sc"], participants_dir=bids,
                      missing_modality="error")
    message = str(error.value)
    assert "sub-01: no SC connectome (atlas '4S156Parcels', SC 'count')" in message
    assert ("its SC relmats: sub-01_ses-1_space-ACPC_connectivity.mat (atlas 4S156Parcels: radius2_count, "
            "radius2_meanlength, sift_invnodevol_radius2_count, sift_radius2_count; atlas AAL116: radius2_count, "
            "radius2_meanlength, sift_invnodevol_radius2_count, sift_radius2_count)") in message
    path = root / "sub-01" / "ses-1" / "dwi" / QSIRECON_NAME.format(s="01", ses="1")
    with pytest.raises(ConnectomeError, match=r"no atlas 'Schaefer100'; the file holds atlas '4S156Parcels' "
                                              r"\(measures \['radius2_count', .*\]\); atlas 'AAL116'"):
        read_connectivity_mat(path, atlas="Schaefer100", measure="radius2_count")
    with pytest.raises(ConnectomeError, match=r"no 'count' matrix of atlas 'AAL116'; its measures are "
                                              r"\['radius2_count', 'radius2_meanlength', "
                                              r"'sift_invnodevol_radius2_count', 'sift_radius2_count'\]. Set "
                                              r"model.sc_weight"):
        read_connectivity_mat(path, atlas="AAL116", measure="count")


def test_two_matching_files_of_a_subject_are_ambiguous_until_selected(tmp_path, rng):
    root, _, _ = qsirecon_folder(tmp_path, rng, labels=("HC", "SZ"))
    dwi = root / "sub-01" / "ses-1" / "dwi"
    second = dwi / "sub-01_ses-1_acq-b3000_space-ACPC_connectivity.mat"
    write_mat(second, rng)
    with pytest.raises(ConnectomeError, match=r"sub-01: 2 SC connectomes match atlas 'AAL116' and measure "
                                              r"'radius2_count': .*; they differ in acq \(None, 'b3000'\); choose "
                                              r"one with model.select.acq"):
        find_relmat(root, "01", "sc", atlas="AAL116", meas="radius2_count")
    assert find_relmat(root, "01", "sc", atlas="AAL116", meas="radius2_count", select={"acq": "b3000"}) == second
    assert find_relmat(root, "01", "sc", atlas="AAL116", meas="radius2_count", select={"acq": ""}).name == \
        QSIRECON_NAME.format(s="01", ses="1")


def test_two_matrices_of_one_measure_in_a_file_are_ambiguous(tmp_path, rng):
    path = tmp_path / "sub-01" / "dwi" / "sub-01_connectivity.mat"
    write_mat(path, rng, atlases={"AAL116": ATLASES["AAL116"]}, measures=("radius2_count",),
              extra={"atlas_AAL116_Radius2_Count_connectivity": sc_matrix(rng, 3)})
    with pytest.raises(ConnectomeError, match=r"2 \(atlas_AAL116_Radius2_Count_connectivity, "
                                              r"atlas_AAL116_radius2_count_connectivity\) 'radius2_count' matrix"):
        read_connectivity_mat(path, atlas="AAL116", measure="radius2_count")


def test_sessions_first_by_default_or_as_selected(tmp_path, rng):
    root, bids, matrices = qsirecon_folder(tmp_path, rng, sessions=("1", "2"))
    key = "4S156Parcels", "radius2_count"
    first, _ = build_dataset(root, atlas=key[0], sc_weight=key[1], modalities=["sc"], participants_dir=bids)
    second, table = build_dataset(root, atlas=key[0], sc_weight=key[1], modalities=["sc"], participants_dir=bids,
                                  select={"session": "2"})
    assert np.array_equal(first.sc[4], matrices[("sub-05", "1", *key)])
    assert second.sc[4][2, 3] == matrices[("sub-05", "2", *key)][2, 3] != first.sc[4][2, 3]
    assert table["sc_file"].str.contains("/ses-2/dwi/").all()


def test_the_atlas_is_found_in_the_files_and_other_mat_files_are_ignored(tmp_path, rng):
    root, _, _ = qsirecon_folder(tmp_path, rng, labels=("HC", "SZ"))
    with pytest.raises(ConnectomeError, match=r"found atlases \['4S156Parcels', 'AAL116'\].*model.atlas"):
        detect_atlas(root)
    (root / "sub-01" / "ses-1" / "dwi" / "sub-01_ses-1_from-T1w_to-ACPC_mode-image_xfm.mat").write_bytes(b"\x00ITK")
    assert [path.name for path in atlas_relmats(root, "AAL116")] == [
        QSIRECON_NAME.format(s="01", ses="1"), QSIRECON_NAME.format(s="02", ses="1")]
    one = tmp_path / "one"
    write_mat(one / "sub-01" / "dwi" / "sub-01_connectivity.mat", rng, atlases={"AAL116": ATLASES["AAL116"]})
    assert detect_atlas(one) == "AAL116"


def test_variables_go_to_the_longest_atlas_prefix_and_network_measures_are_not_atlases():
    square, row = ((4, 4), "double"), ((1, 4), "int64")
    atlases = parse_variables({
        "atlas_schaefer100_region_ids": row, "atlas_schaefer100_radius2_count_connectivity": square,
        "atlas_schaefer100_tianS1_region_ids": row, "atlas_schaefer100_tianS1_radius2_count_connectivity": square,
        # DSI Studio: a matrix per value and type, and network measures with their own region_ids
        "atlas_Gordon333_region_ids": row, "atlas_Gordon333_count_pass_connectivity": square,
        "atlas_Gordon333_count_pass_region_ids": ((1, 4), "cell"),
        "atlas_Gordon333_count_pass_density": ((1, 1), "double"),
        "atlas_Gordon333_gfa_end_connectivity": ((1, 4), "double"),  # not square: not a matrix
        "command": ((1,), "char"),
    })
    assert {name: list(atlas.matrices) for name, atlas in atlases.items()} == {
        "Gordon333": ["count_pass"], "schaefer100": ["radius2_count"], "schaefer100_tianS1": ["radius2_count"]}
    tian = atlases["schaefer100_tianS1"]
    assert tian.prefix == "atlas_schaefer100_tianS1"
    assert tian.matrices["radius2_count"] == "atlas_schaefer100_tianS1_radius2_count_connectivity"


@pytest.mark.parametrize("problem, match", [
    ("asymmetric", "not symmetric"),
    ("inf", "NaN or Inf"),
    ("ids", "6 region ids"),
])
def test_bad_matrices_are_refused_naming_subject_and_file(tmp_path, rng, problem, match):
    table = ATLASES["4S156Parcels"]
    path = tmp_path / "sub-01" / "dwi" / "sub-01_connectivity.mat"
    matrix = sc_matrix(rng, 5)
    ids = table["index"].values
    if problem == "asymmetric":
        matrix[0, 3] += 7
    elif problem == "inf":
        matrix[1, 2] = matrix[2, 1] = np.inf
    else:
        ids = np.append(ids, 6)
    path.parent.mkdir(parents=True)
    savemat(path, {
        "atlas_4S156Parcels_region_ids": ids, "atlas_4S156Parcels_region_labels": table["label"].values,
        "atlas_4S156Parcels_radius2_count_connectivity": matrix}, long_field_names=True)
    with pytest.raises(ConnectomeError, match=match) as error:
        read_connectome(path, atlas="4S156Parcels", measure="radius2_count", subject="sub-01")
    assert "sub-01" in str(error.value) and str(path) in str(error.value)


def test_sc_weight_takes_qsirecon_measures_with_connectomes_dir_only():
    spec = yaml.safe_load(SCHEMA.read_text())["properties"]["model"]["properties"]["sc_weight"]
    jsonschema.validate("sift_invnodevol_radius2_count", spec)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate("sift-count", spec)
    check_sc_weight({"connectomes_dir": "/data/qsirecon", "model": {"sc_weight": "sift_invnodevol_radius2_count"}})
    check_sc_weight({"connectomes_dir": None, "model": {"sc_weight": "countvolnorm"}})
    with pytest.raises(ConfigError, match=r"'model.sc_weight' must be among \{'count', 'countvolnorm', 'length', "
                                          r"'fa'\} .*'radius2_count' was provided.*connectomes_dir only"):
        check_sc_weight({"connectomes_dir": None, "model": {"sc_weight": "radius2_count"}})
