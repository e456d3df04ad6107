"""QC-FC: edge-wise partial correlation with mean FD, its summary and the cohort job's inputs."""

import numpy as np
import pandas as pd
import pytest

from connex.anat.atlases import Atlas
from connex.errors import ConnectomeError
from connex.inputs.io import write_tsv
from connex.report.qcfc import (
    cohort_qc_fc,
    null_median_absolute_r,
    qc_fc,
    qc_fc_summary,
    qc_fc_table,
    region_centroids,
    upper_distances,
)


def test_planted_motion_edges_are_found_and_null_edges_are_not():
    rng = np.random.default_rng(0)
    fd = rng.gamma(2.0, 0.1, 200)
    edges = rng.normal(size=(200, 500))
    edges[:, :50] += 4 * (fd - fd.mean())[:, None]  # 50 edges that motion inflates
    result = qc_fc(edges, fd)
    # without covariates QC-FC is the plain Pearson correlation
    assert np.allclose(result.r[:5], [np.corrcoef(fd, edges[:, k])[0, 1] for k in range(5)])
    assert result.r[:50].min() > 0.2 and (result.p[:50] < 0.05).all()
    assert 0.01 < np.mean(result.p[50:] < 0.05) < 0.1  # about 5 % of null edges by chance
    summary = qc_fc_summary(result, np.arange(500.0))
    assert summary["FractionSignificantFDR"] == pytest.approx(0.1, abs=0.01)  # the 50 planted edges


def test_covariates_are_held_fixed_as_in_the_partial_correlation_formula():
    rng = np.random.default_rng(1)
    age = rng.uniform(20, 60, 120)
    fd = 0.01 * age + rng.normal(0, 0.1, 120)  # older participants move more
    edges = np.column_stack([0.05 * age + rng.normal(0, 0.5, 120) for _ in range(3)])  # age, not motion
    plain, partial = qc_fc(edges, fd), qc_fc(edges, fd, age[:, None], ("age",))
    assert plain.r.min() > 0.3  # the age effect looks like a motion effect
    r_xy, r_xz, r_yz = plain.r, np.corrcoef(fd, age)[0, 1], np.array([np.corrcoef(e, age)[0, 1] for e in edges.T])
    expected = (r_xy - r_xz * r_yz) / np.sqrt((1 - r_xz ** 2) * (1 - r_yz ** 2))
    assert np.allclose(partial.r, expected)
    assert np.abs(partial.r).max() < 0.25 and partial.covariates == ("age",) and partial.dof == 117


def test_edges_without_a_value_in_some_participant_are_left_out():
    rng = np.random.default_rng(2)
    edges = rng.normal(size=(20, 10))
    edges[3, 4] = np.nan
    result = qc_fc(edges, rng.gamma(2, 0.1, 20))
    assert np.isnan(result.r[4]) and np.isnan(result.p[4]) and not np.isnan(np.delete(result.r, 4)).any()
    assert qc_fc_summary(result, np.arange(10.0))["EdgesWithoutValue"] == 1


def test_null_median_absolute_r_matches_simulated_null_correlations():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(2, 20000, 12))  # 12 participants, no covariate: 10 degrees of freedom
    x, y = x - x.mean(1, keepdims=True), y - y.mean(1, keepdims=True)
    r = (x * y).sum(1) / np.sqrt((x ** 2).sum(1) * (y ** 2).sum(1))
    assert null_median_absolute_r(10) == pytest.approx(np.median(np.abs(r)), abs=0.01)
    assert null_median_absolute_r(400) < null_median_absolute_r(30) < null_median_absolute_r(2)


def square_atlas() -> Atlas:
    """Three cubic regions at known places on a 2 mm grid."""
    labels = np.zeros((20, 10, 10), dtype=np.int32)
    labels[0:2, 0:2, 0:2], labels[8:10, 0:2, 0:2], labels[18:20, 8:10, 0:2] = 7, 3, 5
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-10, 0, 0]
    table = pd.DataFrame({"index": [7, 3, 5], "name": ["A", "B", "C"]})
    return Atlas(name="cubes", labels=labels, affine=affine, table=table, space="MNI152NLin2009aSym",
                 source="test", citation="")


def test_region_centroids_are_in_table_order_and_world_millimetres():
    centroids = region_centroids(square_atlas())
    assert np.allclose(centroids, [[-9, 1, 1], [7, 1, 1], [27, 17, 1]])
    assert np.allclose(upper_distances(centroids), [16, np.hypot(36, 16), np.hypot(20, 16)])


def test_distance_dependence_is_the_spearman_correlation_with_distance():
    rng = np.random.default_rng(4)
    fd = rng.gamma(2, 0.1, 300)
    distance = rng.uniform(10, 150, 400)
    # motion inflates short-range edges and deflates long-range ones (Power et al. 2012)
    edges = rng.normal(size=(300, 400)) + np.outer(fd - fd.mean(), 8 * (80 - distance) / 70)
    summary = qc_fc_summary(qc_fc(edges, fd), distance)
    assert summary["DistanceDependence"] < -0.8
    assert summary["MedianAbsoluteQCFC"] > 3 * summary["MedianAbsoluteQCFCWithoutMotionEffect"]


def test_cohort_qc_fc_reads_the_workflow_files_and_holds_age_and_sex_fixed(tmp_path):
    rng = np.random.default_rng(5)
    atlas = square_atlas()
    visits = [f"sub-{k:02d}" for k in range(1, 13)]
    fd = rng.gamma(2, 0.1, 12)
    files = []
    for visit, motion in zip(visits, fd):
        r = np.tanh(rng.normal(0.3, 0.2, 3) + motion)
        matrix = np.eye(3)
        matrix[np.triu_indices(3, 1)] = r
        matrix = np.triu(matrix, 1) + np.triu(matrix, 1).T + np.eye(3)
        files.append(write_tsv(pd.DataFrame(matrix, columns=atlas.table["name"]), tmp_path / f"{visit}_relmat.tsv"))
    qc = write_tsv(pd.DataFrame({"participant_id": visits, "mean_fd_mm": fd}), tmp_path / "qc.tsv")
    participants = write_tsv(pd.DataFrame({"participant_id": visits, "age": rng.uniform(20, 60, 12),
                                           "sex": ["F", "M"] * 6}), tmp_path / "participants.tsv")
    result, distance, summary = cohort_qc_fc(files, visits, qc_tsv=qc, participants_tsv=participants, atlas=atlas)
    assert result.covariates == ("age", "sex") and summary["Participants"] == 12 and "Warning" in summary
    # the same as QC-FC of the Fisher z edges with the covariates built by hand
    table = pd.read_csv(participants, sep="\t")
    covariates = np.column_stack([table["age"], table["sex"] == "M"]).astype(float)
    edges = np.array([np.arctanh(pd.read_csv(f, sep="\t").to_numpy()[np.triu_indices(3, 1)]) for f in files])
    assert np.allclose(result.r, qc_fc(edges, fd, covariates, ("age", "sex")).r)
    assert np.allclose(distance, upper_distances(region_centroids(atlas)))
    matrix = qc_fc_table(result, ["A", "B", "C"]).to_numpy()
    assert np.allclose(matrix, matrix.T) and matrix[0, 1] == pytest.approx(result.r[0])


def test_cohort_qc_fc_finds_each_visits_motion_in_a_table_with_sessions(tmp_path):
    rng = np.random.default_rng(6)
    atlas = square_atlas()
    visits = [f"sub-{k:02d}_ses-{s}" for k in range(1, 4) for s in ("1", "2")]
    fd = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    files = []
    for visit, motion in zip(visits, fd):
        matrix = np.full((3, 3), np.tanh(motion + rng.normal(0, 0.01)))  # FC rises with motion on every edge
        np.fill_diagonal(matrix, 1)
        files.append(write_tsv(pd.DataFrame(matrix, columns=atlas.table["name"]), tmp_path / f"{visit}_relmat.tsv"))
    # the cohort QC table's layout with sessions: participant_id and session in two columns
    qc_rows = pd.DataFrame({"participant_id": [v.split("_")[0] for v in visits],
                            "session": [v.split("-")[-1] for v in visits], "mean_fd_mm": fd})
    qc = write_tsv(qc_rows, tmp_path / "qc.tsv")
    participants = write_tsv(pd.DataFrame({"participant_id": ["sub-01", "sub-02", "sub-03"]}), tmp_path / "p.tsv")
    shuffled = [5, 2, 0, 4, 1, 3]  # the matrices in another order than the table: FD found by visit
    result, _, summary = cohort_qc_fc([files[k] for k in shuffled], [visits[k] for k in shuffled], qc_tsv=qc,
                                      participants_tsv=participants, atlas=atlas)
    assert result.covariates == () and summary["Participants"] == 6
    assert (result.r > 0.99).all()  # each matrix met its own visit's FD
    write_tsv(qc_rows.assign(mean_fd_mm="n/a"), qc)
    with pytest.raises(ConnectomeError, match="mean_fd_mm"):
        cohort_qc_fc(files, visits, qc_tsv=qc, participants_tsv=participants, atlas=atlas)
