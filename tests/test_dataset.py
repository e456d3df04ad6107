"""The connectome dataset stage and the graphs: reading relmats, policies, bad input, transforms."""

import logging

import numpy as np
import pandas as pd
import pytest

from connex.errors import ConfigError, ConnectomeError
from connex.model.dataset import ConnectomeDataset, build_dataset, find_relmat, read_relmat
from connex.model.graphs import GraphTransform, collate, concatenate_graphs, edge_weights
from connex.model.weighting import modality_weighting

N = 7  # regions: an odd size so that a transposed or flattened matrix cannot pass


def random_pair(rng, n=N):
    counts = rng.poisson(20, size=(n, n)).astype(float)
    counts = np.triu(counts, 1) + np.triu(counts, 1).T
    series = rng.standard_normal((50, n))
    return counts, np.corrcoef(series.T)


def write_relmat(path, matrix, header=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [f"R{i + 1}" for i in range(matrix.shape[1])]
    pd.DataFrame(matrix, columns=names).to_csv(path, sep="\t", index=False, header=header)


def make_connectomes(root, rng, labels=("HC", "SZ", "HC", "SZ", "HC", "SZ"), header=True):
    """A connectomes-from-elsewhere folder: participants.tsv and one SC, one FC per subject."""
    ids = [f"sub-{i + 1:02d}" for i in range(len(labels))]
    pd.DataFrame({"participant_id": ids, "diagnosis": labels, "site": ["A", "B"] * (len(ids) // 2),
                  "age": np.arange(len(ids)) + 20.0, "sex": "F"}).to_csv(root / "participants.tsv", sep="\t",
                                                                          index=False)
    for pid in ids:
        sc, fc = random_pair(rng)
        write_relmat(root / pid / "dwi" / f"{pid}_atlas-toy_meas-count_relmat.tsv", sc, header)
        write_relmat(root / pid / "func" / f"{pid}_task-rest_atlas-toy_meas-correlation_relmat.tsv", fc, header)
    return ids


def test_read_relmat_with_and_without_header(tmp_path, rng):
    sc, _ = random_pair(rng)
    write_relmat(tmp_path / "a.tsv", sc, header=True)
    write_relmat(tmp_path / "b.tsv", sc, header=False)
    with_header, names = read_relmat(tmp_path / "a.tsv")
    without, no_names = read_relmat(tmp_path / "b.tsv")
    assert np.array_equal(with_header, sc) and np.array_equal(without, sc)
    assert names == [f"R{i}" for i in range(1, N + 1)] and no_names is None


@pytest.mark.parametrize("problem, match", [
    ("not_square", "not square"),
    ("asymmetric", "not symmetric"),
    ("nan", "NaN or Inf"),
    ("inf", "NaN or Inf"),
    ("text", "non-numeric"),
])
def test_read_relmat_rejects_bad_matrices_naming_subject_and_file(tmp_path, rng, problem, match):
    sc, _ = random_pair(rng)
    if problem == "not_square":
        sc = sc[:, :-1]
    elif problem == "asymmetric":
        sc[0, 3] += 5
    elif problem == "nan":
        sc[2, 2] = np.nan
    elif problem == "inf":
        sc[1, 4] = sc[4, 1] = np.inf
    path = tmp_path / "bad_relmat.tsv"
    write_relmat(path, sc)
    if problem == "text":
        path.write_text(path.read_text().replace("\n", "\nfoo\t", 1).replace("\n", "\n", 1))
    with pytest.raises(ConnectomeError, match=match) as error:
        read_relmat(path, subject="sub-09")
    assert "sub-09" in str(error.value) and str(path) in str(error.value)


def test_build_dataset_pairs_matrices_with_participants(tmp_path, rng):
    ids = make_connectomes(tmp_path, rng, header=False)
    dataset, table = build_dataset(tmp_path, atlas="toy")
    assert dataset.subjects == ids and dataset.sc.shape == (6, N, N) and dataset.fc.shape == (6, N, N)
    assert dataset.y.tolist() == [0, 1, 0, 1, 0, 1] and dataset.classes == ["HC", "SZ"]
    expected, _ = read_relmat(tmp_path / "sub-03" / "func" / "sub-03_task-rest_atlas-toy_meas-correlation_relmat.tsv")
    assert np.array_equal(dataset.fc[2], expected)
    assert dataset.participants["site"].tolist() == ["A", "B"] * 3 and dataset.participants["age"].iloc[4] == 24
    assert table["included"].all()
    dataset.save(tmp_path / "d.npz")
    again = ConnectomeDataset.load(tmp_path / "d.npz")
    assert np.array_equal(again.sc, dataset.sc) and again.subjects == ids and again.y.tolist() == dataset.y.tolist()


def test_subject_missing_a_modality_is_excluded_or_an_error(tmp_path, rng):
    make_connectomes(tmp_path, rng, labels=("HC", "SZ") * 3)
    (tmp_path / "sub-02" / "func" / "sub-02_task-rest_atlas-toy_meas-correlation_relmat.tsv").unlink()
    dataset, table = build_dataset(tmp_path, atlas="toy")
    assert "sub-02" not in dataset.subjects and len(dataset.subjects) == 5
    assert table.set_index("participant_id").loc["sub-02", "reason"] == "missing FC"
    with pytest.raises(ConnectomeError, match="sub-02: no FC connectome"):
        build_dataset(tmp_path, atlas="toy", missing_modality="error")


def test_unlabelled_participant_is_left_out(tmp_path, rng):
    make_connectomes(tmp_path, rng, labels=("HC", "SZ", "n/a", "SZ", "HC", "SZ"))
    dataset, table = build_dataset(tmp_path, atlas="toy")
    assert "sub-03" not in dataset.subjects
    assert table.set_index("participant_id").loc["sub-03", "reason"] == "no diagnosis (n/a)"


def test_matrices_of_different_sizes_name_the_subject_and_file(tmp_path, rng):
    make_connectomes(tmp_path, rng)
    path = tmp_path / "sub-04" / "dwi" / "sub-04_atlas-toy_meas-count_relmat.tsv"
    write_relmat(path, random_pair(rng, n=N + 1)[0])
    with pytest.raises(ConnectomeError,
                       match=r"sub-04: .*sub-04_atlas-toy_meas-count_relmat.tsv is 8 x 8, but .* is 7 x 7"):
        build_dataset(tmp_path, atlas="toy")


def test_region_names_in_a_different_order_are_an_error(tmp_path, rng):
    make_connectomes(tmp_path, rng)
    path = tmp_path / "sub-05" / "dwi" / "sub-05_atlas-toy_meas-count_relmat.tsv"
    text = path.read_text().split("\n", 1)
    path.write_text(text[0].replace("R1\tR2", "R2\tR1") + "\n" + text[1])
    with pytest.raises(ConnectomeError, match="sub-05: .* names region 1 'R2'"):
        build_dataset(tmp_path, atlas="toy")


def test_only_one_class_is_an_error(tmp_path, rng):
    make_connectomes(tmp_path, rng, labels=("SZ",) * 4)
    with pytest.raises(ConnectomeError, match="at least two classes"):
        build_dataset(tmp_path, atlas="toy")


def test_two_matching_files_are_an_error(tmp_path, rng):
    make_connectomes(tmp_path, rng)
    extra = tmp_path / "sub-01" / "dwi" / "sub-01_atlas-toy_meas-count_desc-other_relmat.tsv"
    write_relmat(extra, random_pair(rng)[0])
    with pytest.raises(ConnectomeError, match="2 SC connectomes match"):
        find_relmat(tmp_path, "01", "sc", atlas="toy", meas="count")
    # entities are matched whole: meas-count does not match meas-countvolnorm
    other = tmp_path / "sub-02" / "dwi" / "sub-02_atlas-toy_meas-countvolnorm_relmat.tsv"
    write_relmat(other, random_pair(rng)[0])
    assert find_relmat(tmp_path, "02", "sc", atlas="toy", meas="count").name == "sub-02_atlas-toy_meas-count_relmat.tsv"


def test_an_upgraded_output_folder_reads_the_stat_named_matrix(tmp_path, rng):
    """ConneX 0.1.0 wrote meas-, later versions stat-: both in one folder (a rerun), the stat- one
    is read; a meas- file alone is still read; two stat- files are still an error."""
    old = tmp_path / "sub-01" / "dwi" / "sub-01_atlas-toy_meas-count_relmat.tsv"
    write_relmat(old, random_pair(rng)[0])
    assert find_relmat(tmp_path, "01", "sc", atlas="toy", meas="count") == old
    new = old.with_name("sub-01_atlas-toy_stat-count_relmat.tsv")
    write_relmat(new, random_pair(rng)[0])
    assert find_relmat(tmp_path, "01", "sc", atlas="toy", meas="count") == new
    write_relmat(old.with_name("sub-01_atlas-toy_stat-count_desc-x_relmat.tsv"), random_pair(rng)[0])
    with pytest.raises(ConnectomeError, match="differ in desc"):
        find_relmat(tmp_path, "01", "sc", atlas="toy", meas="count")


def test_synthetic_connectomes_only_output_is_a_valid_input(tmp_path):
    from connex.synth import SynthConfig
    from connex.synth.cohort import generate_connectomes

    out = generate_connectomes(tmp_path / "synth", SynthConfig(n_subjects=6, n_regions=10, n_volumes=60,
                                                               n_sc_effect_edges=2, n_fc_effect_edges=2))
    dataset, table = build_dataset(out, atlas="synth")
    assert len(dataset.subjects) == 6 and dataset.sc.shape == (6, 10, 10)
    names = pd.read_csv(out / "derivatives" / "groundtruth" / "atlas-synth_dseg.tsv", sep="\t")["name"].tolist()
    assert dataset.regions == names


# --------------------------------------------------------------------------------- graphs

def test_edge_weights_log_scale_sc_and_fisher_z_fc():
    sc = np.array([[[0.0, np.e - 1], [np.e - 1, 0.0]]])
    fc = np.array([[[1.0, np.tanh(0.5)], [np.tanh(0.5), 1.0]]])
    assert np.allclose(edge_weights(sc, "log1p"), [[[0, 1], [1, 0]]])
    assert np.allclose(edge_weights(fc, "fisher_z"), [[[0, 0.5], [0.5, 0]]])  # diagonal zeroed, not inf
    with pytest.raises(ValueError, match="non-negative"):
        edge_weights(-sc, "log1p")


def test_modality_weighting_fisher_z_for_correlations_unless_already_z():
    assert modality_weighting("correlation") == {"sc": "log1p", "fc": "fisher_z"}
    assert modality_weighting("partialcorrelation") == {"sc": "log1p", "fc": "fisher_z"}
    assert modality_weighting("correlation", fc_is_fisher_z=True) == {"sc": "log1p", "fc": "none"}
    assert modality_weighting("covariance") == {"sc": "log1p", "fc": "none"}
    with pytest.raises(ConfigError, match="'fc_measure' must be one of"):
        modality_weighting("pearson")


def test_topk_keeps_each_regions_strongest_connections():
    # one subject, 4 regions: region 0's strongest partner is 3, region 1's is 2, etc.
    matrix = np.array([[0, 1, 2, 9], [1, 0, 8, 3], [2, 8, 0, 4], [9, 3, 4, 0]], dtype=float)
    graphs = GraphTransform("none", sparsify="topk", k=1).fit(matrix[None]).transform(matrix[None])
    edges = set(map(tuple, graphs.edge_index[0].T.tolist()))
    assert edges == {(0, 3), (3, 0), (1, 2), (2, 1)}
    assert np.allclose(sorted(graphs.edge_weight[0]), np.array([8, 8, 9, 9]) / 8.5)  # divided by the mean kept weight


def test_proportional_threshold_is_fitted_on_training_subjects_only(rng):
    train = np.stack([random_pair(rng)[0] for _ in range(5)])
    test = train[:2] * 10.0  # much stronger test connectomes
    transform = GraphTransform("log1p", sparsify="proportional", density=0.2).fit(train)
    threshold = transform.threshold_
    graphs = transform.transform(test)
    assert transform.threshold_ == threshold  # transform never refits
    # with the training threshold, the stronger test matrices keep more edges than the 20% density
    kept = np.mean([len(w) for w in graphs.edge_weight]) / (N * (N - 1))
    assert kept > 0.2
    again = GraphTransform("log1p", sparsify="proportional", density=0.2).fit(test)
    assert again.threshold_ > threshold


def test_feature_scaler_is_fitted_on_training_subjects(rng):
    train = np.stack([random_pair(rng)[1] for _ in range(6)])
    transform = GraphTransform("fisher_z").fit(train)
    features = transform.transform(train).features
    off_diagonal = ~np.eye(N, dtype=bool)
    assert np.allclose(features.mean(0)[off_diagonal], 0, atol=1e-5)
    assert np.allclose(features.std(0)[off_diagonal], 1, atol=1e-4)
    shifted = transform.transform(train + 0.0)
    assert np.array_equal(shifted.features, features)


def test_features_are_clipped_z_scores(rng):
    train = np.stack([random_pair(rng)[0] for _ in range(8)])
    test = train[:1].copy()
    test[0, 0, 1] = test[0, 1, 0] = 1e6  # one extreme element
    clipped = GraphTransform("log1p", clip=3.0).fit(train).transform(test).features
    raw = GraphTransform("log1p", clip=None).fit(train).transform(test).features
    assert raw[0, 0, 1] > 3 and clipped[0, 0, 1] == 3.0
    inside = np.abs(raw) <= 3
    assert np.array_equal(clipped[inside], raw[inside])


def test_collate_offsets_edges_and_concatenate_graphs(rng):
    matrices = np.stack([random_pair(rng)[0] for _ in range(3)])
    sc = GraphTransform("log1p", k=2).fit(matrices).transform(matrices)
    fc = GraphTransform("none", k=2).fit(matrices).transform(-matrices)
    batch = collate(sc, [2, 0])
    assert batch.x.shape == (2 * N, N) and batch.n_graphs == 2
    first = sc.edge_index[2].shape[1]
    assert np.array_equal(batch.edge_index[:, :first].numpy(), sc.edge_index[2])
    assert np.array_equal(batch.edge_index[:, first:].numpy(), sc.edge_index[0] + N)
    assert np.array_equal(batch.edge_pair[:first].numpy(), sc.edge_index[2][0] * N + sc.edge_index[2][1])
    fused = concatenate_graphs(sc, fc)
    assert fused.features.shape == (3, N, 2 * N)
    union = set(map(tuple, sc.edge_index[1].T.tolist())) | set(map(tuple, fc.edge_index[1].T.tolist()))
    assert set(map(tuple, fused.edge_index[1].T.tolist())) == union


def test_detect_atlas_finds_the_one_atlas_or_lists_several(tmp_path, rng):
    from connex.model.dataset import detect_atlas

    make_connectomes(tmp_path, rng)
    assert detect_atlas(tmp_path) == "toy"
    write_relmat(tmp_path / "sub-01" / "dwi" / "sub-01_atlas-other_meas-count_relmat.tsv", random_pair(rng)[0])
    with pytest.raises(ConnectomeError, match=r"atlases \['other', 'toy'\]"):
        detect_atlas(tmp_path)


def test_numeric_region_names_and_nan_in_the_first_row(tmp_path, rng):
    sc, _ = random_pair(rng, n=3)
    path = tmp_path / "numeric_relmat.tsv"
    path.write_text("1\t2\t3\n" + "\n".join("\t".join(f"{v:g}" for v in row) for row in sc) + "\n")
    matrix, names = read_relmat(path)
    assert names == ["1", "2", "3"] and np.array_equal(matrix, sc)
    path.write_text("0\tn/a\t1\n" + "\n".join("\t".join(f"{v:g}" for v in row) for row in sc[1:]) + "\n")
    with pytest.raises(ConnectomeError, match="NaN or Inf"):
        read_relmat(path)


def test_negative_sc_and_three_classes_are_errors(tmp_path, rng):
    make_connectomes(tmp_path, rng)
    path = tmp_path / "sub-02" / "dwi" / "sub-02_atlas-toy_meas-count_relmat.tsv"
    matrix, _ = read_relmat(path)
    write_relmat(path, -matrix)
    with pytest.raises(ConnectomeError, match="sub-02: .*sub-02_atlas-toy_meas-count_relmat.tsv has negative values"):
        build_dataset(tmp_path, atlas="toy")
    with pytest.raises(ValueError, match="binary classifier"):
        build_dataset(tmp_path, atlas="toy", classes=("HC", "SZ", "BP"))


def test_fc_only_cohort_reads_fc_alone_and_saves_its_modalities(tmp_path, rng):
    make_connectomes(tmp_path, rng, labels=("HC", "SZ") * 3)
    for sc in tmp_path.glob("sub-*/dwi/*_relmat.tsv"):  # an FC-only cohort: no SC at all
        sc.unlink()
    with pytest.raises(ConnectomeError, match="0 usable; left out: {'missing SC': 6}"):
        build_dataset(tmp_path, atlas="toy")  # the paired default still needs SC
    dataset, table = build_dataset(tmp_path, atlas="toy", modalities=["fc"])
    assert dataset.modalities == ("fc",) and len(dataset.subjects) == 6 and table["included"].all()
    expected = read_relmat(tmp_path / "sub-03" / "func" / "sub-03_task-rest_atlas-toy_meas-correlation_relmat.tsv")[0]
    assert np.array_equal(dataset.matrices("fc")[2], expected) and dataset.sc.shape == (6, 0, 0)
    with pytest.raises(ConfigError, match="'modality' must be one of {'fc'}; 'sc' was provided."):
        dataset.matrices("sc")
    again = ConnectomeDataset.load(dataset.save(tmp_path / "dataset.npz"))
    assert again.modalities == ("fc",) and np.array_equal(again.fc, dataset.fc)
    with pytest.raises(ConfigError, match="'modalities' must be one of"):
        build_dataset(tmp_path, atlas="toy", modalities=["dti"])


def test_sc_only_subject_is_used_by_an_sc_only_model_and_left_out_of_a_paired_one(tmp_path, rng):
    make_connectomes(tmp_path, rng, labels=("HC", "SZ") * 3)
    (tmp_path / "sub-04" / "func" / "sub-04_task-rest_atlas-toy_meas-correlation_relmat.tsv").unlink()
    paired, table = build_dataset(tmp_path, atlas="toy")
    assert "sub-04" not in paired.subjects and table.set_index("participant_id").loc["sub-04", "reason"] == "missing FC"
    sc_only, _ = build_dataset(tmp_path, atlas="toy", modalities=("sc",))
    assert "sub-04" in sc_only.subjects and sc_only.modalities == ("sc",) and sc_only.fc.shape == (6, 0, 0)


def test_nan_edges_leave_the_subject_out_or_become_zero_as_the_policy_says(tmp_path, rng):
    make_connectomes(tmp_path, rng, labels=("HC", "SZ") * 3)
    path = tmp_path / "sub-05" / "func" / "sub-05_task-rest_atlas-toy_meas-correlation_relmat.tsv"
    fc, _ = read_relmat(path)
    lines = path.read_text().splitlines()  # region 3 without signal: its row and column are n/a
    cells = [line.split("\t") for line in lines]
    for i in range(1, N + 1):
        cells[i][2] = cells[3][i - 1] = "n/a"
    path.write_text("\n".join("\t".join(row) for row in cells) + "\n")
    dataset, table = build_dataset(tmp_path, atlas="toy")
    reason = table.set_index("participant_id").loc["sub-05", "reason"]
    assert "sub-05" not in dataset.subjects and reason == f"NaN edges (FC {path}: {2 * N - 1} NaN cells)"
    zeroed, _ = build_dataset(tmp_path, atlas="toy", missing_edges="zero")
    matrix = zeroed.matrices("fc")[zeroed.subjects.index("sub-05")]
    assert (matrix[2] == 0).all() and (matrix[:, 2] == 0).all()
    keep = np.ones(N, bool)
    keep[2] = False
    assert np.array_equal(matrix[np.ix_(keep, keep)], fc[np.ix_(keep, keep)])
    with pytest.raises(ConnectomeError, match="sub-05: .*NaN or Inf value"):
        build_dataset(tmp_path, atlas="toy", missing_edges="error")


# ------------------------------------------------------------------- connectomes from XCP-D
# Written by hand in XCP-D's documented layout (0.8+: seg-/stat-, a Node column, n/a for the
# edges of low-coverage parcels, the desc-<N>volumes variant of --create-matrices), not with
# this project's writer; participants.tsv is in the raw BIDS dataset, as for XCP-D derivatives.

XCPD_ATLAS = "4S156Parcels"
XCPD_REGIONS = ["LH_Vis_1", "LH_SomMot_1", "RH_Vis_1", "RH_Default_1", "Thal_L", "Cereb_R"]


def xcpd_name(pid, ses="1", space="MNI152NLin2009cAsym", extra=""):
    return f"{pid}_ses-{ses}_task-rest_space-{space}_seg-{XCPD_ATLAS}_stat-pearsoncorrelation{extra}_relmat.tsv"


def xcpd_relmat(path, matrix, regions=XCPD_REGIONS):
    """One relmat as XCP-D writes it: `Node` and the region names above, a `Node` column, n/a."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(["Node", *regions])]
    lines += ["\t".join([name, *("n/a" if np.isnan(v) else f"{v:.6f}" for v in row)])
              for name, row in zip(regions, matrix)]
    path.write_text("\n".join(lines) + "\n")


def xcpd_dataset(tmp_path, rng, sessions=("1", "2"), labels=("HC", "SZ") * 3):
    """An XCP-D folder (no participants.tsv) and its raw BIDS dataset (participants.tsv only):
    ``(xcp_d, bids, {(pid, ses): matrix})``."""
    xcpd, bids = tmp_path / "xcp_d", tmp_path / "bids"
    bids.mkdir()
    ids = [f"sub-{i + 1:02d}" for i in range(len(labels))]
    pd.DataFrame({"participant_id": ids, "diagnosis": labels}).to_csv(bids / "participants.tsv", sep="\t",
                                                                      index=False)
    (xcpd / "sub-01").mkdir(parents=True)
    (xcpd / "dataset_description.json").write_text('{"Name": "XCP-D", "DatasetType": "derivative"}')
    matrices = {}
    for pid in ids:
        for ses in sessions:
            fc = np.round(random_pair(rng, n=len(XCPD_REGIONS))[1], 6)
            func = xcpd / pid / f"ses-{ses}" / "func"
            xcpd_relmat(func / xcpd_name(pid, ses), fc)
            (func / xcpd_name(pid, ses).replace("pearsoncorrelation_relmat", "mean_timeseries")).write_text("x\n")
            matrices[pid, ses] = fc
    return xcpd, bids, matrices


def test_read_relmat_takes_xcpds_node_column_and_na_cells(tmp_path, rng):
    fc = np.round(random_pair(rng, n=len(XCPD_REGIONS))[1], 6)
    fc[4, :] = fc[:, 4] = np.nan  # Thal_L below the coverage threshold
    path = tmp_path / xcpd_name("sub-01")
    xcpd_relmat(path, fc)
    matrix, regions = read_relmat(path, allow_nan=True)
    assert regions == XCPD_REGIONS and matrix.shape == (6, 6)
    assert np.array_equal(np.isnan(matrix), np.isnan(fc)) and np.allclose(matrix, fc, equal_nan=True)
    with pytest.raises(ConnectomeError, match="NaN or Inf"):
        read_relmat(path)
    # an index column of names without a header row, and a numeric header below Node
    path.write_text("\n".join("\t".join([f"R{i}", *(f"{v:g}" for v in row)]) for i, row in enumerate(fc[:3, :3]))
                    + "\n")
    assert read_relmat(path)[1] == ["R0", "R1", "R2"]
    path.write_text("Node\t1\t2\t3\n" + "\n".join("\t".join([str(i + 1), *(f"{v:g}" for v in row)])
                                                 for i, row in enumerate(fc[:3, :3])) + "\n")
    matrix, regions = read_relmat(path)
    assert regions == ["1", "2", "3"] and np.allclose(matrix, fc[:3, :3])
    xcpd_relmat(path, fc[:3, :3], regions=["A", "B", "C"])
    path.write_text(path.read_text().replace("\nB\t", "\nX\t"))
    with pytest.raises(ConnectomeError, match="the index column names region 2 'X' where the header has 'B'"):
        read_relmat(path, subject="sub-01")


def test_xcpd_outputs_are_read_with_participants_from_bids_dir_and_the_first_session(tmp_path, rng, caplog):
    xcpd, bids, matrices = xcpd_dataset(tmp_path, rng)
    with caplog.at_level(logging.INFO, logger="connex.model.dataset"):
        dataset, table = build_dataset(xcpd, atlas=XCPD_ATLAS, modalities=["fc"], participants_dir=bids)
    assert dataset.subjects == [f"sub-{i:02d}" for i in range(1, 7)] and dataset.regions == XCPD_REGIONS
    assert np.allclose(dataset.fc[2], matrices["sub-03", "1"])
    assert table.set_index("participant_id").loc["sub-03", "fc_file"].endswith(xcpd_name("sub-03", "1"))
    assert f"Participants: {bids / 'participants.tsv'} (connectomes from {xcpd}: no participants.tsv there)" \
        in caplog.text
    assert ("sub-01: FC connectomes match atlas '4S156Parcels' and measure 'correlation' (task 'rest') in sessions "
            "['1', '2']; reading session 1, the first (model.select.session: null; set it to choose).") in caplog.text
    second, table = build_dataset(xcpd, atlas=XCPD_ATLAS, modalities=["fc"], participants_dir=bids,
                                  select={"session": "ses-2"})
    assert np.allclose(second.fc[2], matrices["sub-03", "2"])
    assert table.set_index("participant_id").loc["sub-03", "fc_file"].endswith(xcpd_name("sub-03", "2"))
    from connex.model.dataset import detect_atlas

    assert detect_atlas(xcpd) == XCPD_ATLAS


def test_xcpd_variants_are_an_error_naming_what_differs_until_selected(tmp_path, rng, caplog):
    xcpd, bids, matrices = xcpd_dataset(tmp_path, rng, sessions=("1",))
    for pid in ("sub-01", "sub-02"):  # an HC and an SZ with the variant
        xcpd_relmat(xcpd / pid / "ses-1" / "func" / xcpd_name(pid, extra="_desc-100volumes"),
                    matrices[pid, "1"] * 0.5)
    func = xcpd / "sub-01" / "ses-1" / "func"
    with pytest.raises(ConnectomeError) as error:
        find_relmat(xcpd, "01", "fc", atlas=XCPD_ATLAS, meas="correlation", task="rest")
    assert str(error.value) == (
        f"sub-01: 2 FC connectomes match atlas '4S156Parcels' and measure 'correlation' (task 'rest'): "
        f"{[str(func / xcpd_name('sub-01', extra='_desc-100volumes')), str(func / xcpd_name('sub-01'))]}; they "
        "differ in desc (None, '100volumes'); choose one with model.select.desc ('' for the file without the "
        "entity) (README, 'Connectomes from elsewhere').")
    picked = find_relmat(xcpd, "01", "fc", atlas=XCPD_ATLAS, meas="correlation", task="rest",
                         select={"desc": "100volumes"})
    assert picked.name == xcpd_name("sub-01", extra="_desc-100volumes")
    plain = find_relmat(xcpd, "01", "fc", atlas=XCPD_ATLAS, meas="correlation", select={"desc": ""})
    assert plain.name == xcpd_name("sub-01")
    # a CIFTI run too: space and den tell it apart
    xcpd_relmat(func / xcpd_name("sub-01", space="fsLR", extra="_den-91k"), matrices["sub-01", "1"])
    with pytest.raises(ConnectomeError, match=r"3 FC connectomes .* differ in den \(None, '91k'\) and desc \(None, "
                                              r"'100volumes'\) and space \('MNI152NLin2009cAsym', 'fsLR'\); choose one "
                                              r"with model.select.den, model.select.desc, model.select.space"):
        find_relmat(xcpd, "01", "fc", atlas=XCPD_ATLAS, meas="correlation")
    chosen = find_relmat(xcpd, "01", "fc", atlas=XCPD_ATLAS, meas="correlation",
                         select={"space": "fsLR", "desc": None, "session": None})
    assert chosen.name == xcpd_name("sub-01", space="fsLR", extra="_den-91k")
    dataset, _ = build_dataset(xcpd, atlas=XCPD_ATLAS, modalities=["fc"], participants_dir=bids,
                               select={"space": "MNI152NLin2009cAsym", "desc": "100volumes"})
    assert dataset.subjects == ["sub-01", "sub-02"]  # the others have no such variant: missing FC
    assert ("sub-03: no FC connectome (atlas '4S156Parcels', FC 'correlation', model.select {'space': "
            "'MNI152NLin2009cAsym', 'desc': '100volumes'})") in caplog.text
    assert np.allclose(dataset.fc[1], matrices["sub-02", "1"] * 0.5, atol=1e-6)
    with pytest.raises(ConfigError, match=r"'model.select.seg': the seg- entity is not chosen here"):
        find_relmat(xcpd, "01", "fc", atlas=XCPD_ATLAS, meas="correlation", select={"seg": "Glasser"})


def test_xcpd_na_parcels_follow_the_missing_edges_policy(tmp_path, rng):
    xcpd, bids, matrices = xcpd_dataset(tmp_path, rng, sessions=("1",))
    fc = matrices["sub-04", "1"].copy()
    fc[1, :] = fc[:, 1] = np.nan  # LH_SomMot_1 without signal
    path = xcpd / "sub-04" / "ses-1" / "func" / xcpd_name("sub-04")
    xcpd_relmat(path, fc)
    assert "n/a" in path.read_text()
    dataset, table = build_dataset(xcpd, atlas=XCPD_ATLAS, modalities=["fc"], participants_dir=bids)
    assert "sub-04" not in dataset.subjects
    assert table.set_index("participant_id").loc["sub-04", "reason"] == f"NaN edges (FC {path}: 11 NaN cells)"
    zeroed, _ = build_dataset(xcpd, atlas=XCPD_ATLAS, modalities=["fc"], participants_dir=bids, missing_edges="zero")
    matrix = zeroed.fc[zeroed.subjects.index("sub-04")]
    assert (matrix[1] == 0).all() and (matrix[:, 1] == 0).all() and np.allclose(matrix[0, 2], fc[0, 2])
    with pytest.raises(ConnectomeError, match="sub-04: .*NaN or Inf value"):
        build_dataset(xcpd, atlas=XCPD_ATLAS, modalities=["fc"], participants_dir=bids, missing_edges="error")


def test_no_match_lists_the_relmats_the_subject_has(tmp_path, rng, caplog):
    xcpd, bids, _ = xcpd_dataset(tmp_path, rng, sessions=("1",))
    with caplog.at_level(logging.WARNING), pytest.raises(ConnectomeError, match="0 usable"):
        build_dataset(xcpd, atlas=XCPD_ATLAS, fc_measure="covariance", modalities=["fc"], participants_dir=bids)
    assert (f"sub-02: no FC connectome (atlas '4S156Parcels', FC 'covariance') under {xcpd / 'sub-02'}; its FC "
            f"relmats: {xcpd_name('sub-02')}: left out of the model.") in caplog.text
    with pytest.raises(ConnectomeError, match=r"sub-01: no SC connectome .*; no \*_relmat.tsv in sub-01/dwi or "
                                              r"sub-01/ses-\*/dwi; set missing_modality: exclude"):
        build_dataset(xcpd, atlas=XCPD_ATLAS, participants_dir=bids, missing_modality="error")


@pytest.mark.parametrize("name", [
    "sub-01_task-rest_atlas-toy_meas-correlation_relmat.tsv",  # this pipeline's own
    "sub-01_task-rest_space-MNI152NLin6Asym_atlas-toy_stat-pearsoncorrelation_relmat.tsv",  # XCP-D 0.7
    "sub-01_task-rest_seg-toy_stat-pearsoncorrelation_relmat.tsv",  # XCP-D 0.8+
    "sub-01_task-rest_atlas-toy_measure-pearsoncorrelation_relmat.tsv",  # older names
    "sub-01_task-rest_atlas-toy_desc-pearsoncorrelation_relmat.tsv",
    "sub-01_task-rest_atlas-toy_meas-PearsonCorrelation_relmat.tsv",  # any case
])
def test_other_tools_names_of_atlas_and_measure_are_matched(tmp_path, rng, name):
    path = tmp_path / "sub-01" / "func" / name
    write_relmat(path, random_pair(rng)[1])
    write_relmat(path.with_name(name.replace("rest", "nback")), random_pair(rng)[1])  # another task
    assert find_relmat(tmp_path, "01", "fc", atlas="toy", meas="correlation", task="rest") == path
    assert find_relmat(tmp_path, "01", "fc", atlas="toy", meas="partialcorrelation", task="rest") is None
    assert find_relmat(tmp_path, "01", "fc", atlas="toyx", meas="correlation", task="rest") is None


def test_measure_aliases_name_registered_measures():
    from connex.model.dataset import MEASURE_ALIASES
    from connex.registry import FC_MEASURES

    assert set(MEASURE_ALIASES.values()) <= set(FC_MEASURES)


def test_participants_come_from_bids_dir_when_the_connectomes_folder_has_none(tmp_path):
    from connex.config import check_paths, participants_folder

    conn, bids = tmp_path / "xcp_d", tmp_path / "bids"
    conn.mkdir()
    bids.mkdir()
    with pytest.raises(ConfigError) as error:
        participants_folder(conn, bids)
    assert str(error.value) == (f"connectomes_dir '{conn}': no participants.tsv in this folder nor in bids_dir "
                                f"'{bids}' (looked for {conn / 'participants.tsv'} and {bids / 'participants.tsv'}; "
                                "the model stages read participant_id and the labels from the first of the two "
                                "that exists).")
    with pytest.raises(ConfigError, match=r"no participants.tsv in this folder, and no bids_dir to read it from "
                                          r"\(looked for .*; bids_dir is 'demo'\)"):
        check_paths({"bids_dir": "demo", "connectomes_dir": str(conn)})
    (bids / "participants.tsv").write_text("participant_id\tdiagnosis\nsub-01\tHC\n")
    assert participants_folder(conn, bids) == bids
    check_paths({"bids_dir": str(bids), "connectomes_dir": str(conn)})
    (conn / "participants.tsv").write_text("participant_id\tdiagnosis\nsub-01\tHC\n")
    assert participants_folder(conn, bids) == conn  # the connectomes folder's own comes first
