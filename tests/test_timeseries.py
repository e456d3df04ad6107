"""Region time series beside the FC matrices: which runs belong to a matrix, the Ledoit-Wolf
covariances of the dataset, and the tangent baseline reading them."""

import numpy as np
import pandas as pd
import pytest
from sklearn.covariance import LedoitWolf

from connex.errors import ConnectomeError
from connex.evaluation.baselines import tangent_vectors
from connex.evaluation.harmonise import harmonise_dataset
from connex.evaluation.tangent import TangentSpace
from connex.model.dataset import ConnectomeDataset, build_dataset
from connex.model.timeseries import fc_covariance, read_timeseries, timeseries_files
from tests.test_dataset import N, make_connectomes


def write_runs(folder, stem, runs, names=None, template="{stem}_run-{run}_atlas-toy_timeseries.tsv"):
    """One TSV per run, header of region names (``R1``..)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"R{i + 1}" for i in range(runs[0].shape[1])]
    for run, data in enumerate(runs, start=1):
        pd.DataFrame(data, columns=names).to_csv(folder / template.format(stem=stem, run=run), sep="\t", index=False)


def test_timeseries_files_are_the_runs_with_the_matrix_entities(tmp_path):
    func = tmp_path / "sub-01" / "func"
    func.mkdir(parents=True)
    relmat = func / "sub-01_task-rest_space-MNI_seg-toy_stat-pearsoncorrelation_relmat.tsv"
    for name in [relmat.name,
                 "sub-01_task-rest_run-1_space-MNI_seg-toy_stat-mean_timeseries.tsv",  # XCP-D's naming
                 "sub-01_task-rest_run-2_space-MNI_seg-toy_stat-mean_timeseries.tsv",
                 "sub-01_task-rest_run-1_space-MNI_seg-other_stat-mean_timeseries.tsv",  # another atlas
                 "sub-01_task-nback_run-1_space-MNI_seg-toy_stat-mean_timeseries.tsv",  # another task
                 "sub-01_task-rest_run-1_space-MNI_seg-toy_desc-raw_stat-mean_timeseries.tsv"]:  # a desc variant
        (func / name).write_text("")
    assert [p.name for p in timeseries_files(relmat)] == [
        "sub-01_task-rest_run-1_space-MNI_seg-toy_stat-mean_timeseries.tsv",
        "sub-01_task-rest_run-2_space-MNI_seg-toy_stat-mean_timeseries.tsv"]


def test_a_one_run_matrix_takes_only_its_run(tmp_path):
    func = tmp_path / "sub-01" / "func"
    func.mkdir(parents=True)
    relmat = func / "sub-01_task-rest_run-2_seg-toy_stat-pearsoncorrelation_relmat.tsv"
    for run in (1, 2):
        (func / f"sub-01_task-rest_run-{run}_seg-toy_stat-mean_timeseries.tsv").write_text("")
    assert [p.name for p in timeseries_files(relmat)] == ["sub-01_task-rest_run-2_seg-toy_stat-mean_timeseries.tsv"]


def test_covariance_is_ledoit_wolf_of_the_zscored_concatenated_runs(rng):
    runs = [rng.standard_normal((40, N)) * 3 + 5, rng.standard_normal((30, N))]
    runs[1][:, 2] = 4.0  # a region without signal in one run
    expected_input = []
    for run in runs:
        sd = run.std(axis=0)
        expected_input.append(np.where(sd > 0, (run - run.mean(0)) / np.where(sd > 0, sd, 1), 0))
    expected = LedoitWolf(assume_centered=True).fit(np.concatenate(expected_input)).covariance_
    covariance = fc_covariance(runs)
    assert np.allclose(covariance, expected)
    assert np.all(np.linalg.eigvalsh(covariance) > 0)  # positive definite, whatever the dead region


def test_read_timeseries_checks_columns_and_reads_na_as_no_signal(tmp_path, rng):
    data = rng.standard_normal((10, 3))
    path = tmp_path / "sub-01_task-rest_atlas-toy_timeseries.tsv"
    frame = pd.DataFrame(data, columns=["R1", "R2", "R3"]).astype(object)
    frame.iloc[:, 1] = "n/a"
    frame.to_csv(path, sep="\t", index=False)
    values = read_timeseries(path, ["R1", "R2", "R3"])
    assert np.allclose(values[:, 0], data[:, 0]) and np.all(values[:, 1] == 0)
    with pytest.raises(ConnectomeError, match="3 columns .* 4 regions"):
        read_timeseries(path, ["R1", "R2", "R3", "R4"])


def test_dataset_has_the_covariances_when_every_subject_has_time_series(tmp_path, rng):
    ids = make_connectomes(tmp_path, rng, labels=("HC", "SZ") * 7)
    runs = {pid: [rng.standard_normal((25, N)) for _ in range(2)] for pid in ids}
    for pid in ids:
        write_runs(tmp_path / pid / "func", f"{pid}_task-rest", runs[pid])
    dataset, _ = build_dataset(tmp_path, atlas="toy")
    assert dataset.fc_covariance.shape == (len(ids), N, N)
    assert np.allclose(dataset.fc_covariance[3], fc_covariance(runs[ids[3]]))
    assert "Ledoit-Wolf covariances" in dataset.metadata["tangent_source"]
    # kept through save/load, and what the tangent baseline embeds (not the matrices)
    loaded = ConnectomeDataset.load(dataset.save(tmp_path / "dataset.npz"))
    assert np.allclose(loaded.fc_covariance, dataset.fc_covariance)
    train = np.arange(4)
    expected = TangentSpace().fit(dataset.fc_covariance[train]).transform(dataset.fc_covariance)
    assert np.allclose(tangent_vectors(loaded, train), expected)
    off, _ = build_dataset(tmp_path, atlas="toy", fc_timeseries="matrices")
    assert off.fc_covariance is None and not np.allclose(tangent_vectors(off, train), expected)
    # harmonisation adjusts the covariances as it adjusts the FC edges, fitted on the training subjects
    harmonised, info = harmonise_dataset(dataset, np.arange(len(ids)), site="combat")
    assert info["harmonised_sites"] == ["A", "B"]
    assert not np.allclose(harmonised.fc_covariance, dataset.fc_covariance)
    assert np.allclose(np.diagonal(harmonised.fc_covariance, axis1=1, axis2=2),
                       np.diagonal(dataset.fc_covariance, axis1=1, axis2=2))


def test_dataset_uses_the_matrices_when_a_subject_lacks_time_series(tmp_path, rng):
    ids = make_connectomes(tmp_path, rng)
    for pid in ids[1:]:
        write_runs(tmp_path / pid / "func", f"{pid}_task-rest", [rng.standard_normal((25, N))])
    dataset, _ = build_dataset(tmp_path, atlas="toy")
    assert dataset.fc_covariance is None
    assert "sub-01 has no region time series" in dataset.metadata["tangent_source"]


def test_time_series_of_other_regions_are_not_used_and_the_file_is_named(tmp_path, rng, caplog):
    ids = make_connectomes(tmp_path, rng)
    for pid in ids:
        write_runs(tmp_path / pid / "func", f"{pid}_task-rest", [rng.standard_normal((25, N))],
                   names=[f"X{i}" for i in range(N)])
    dataset, _ = build_dataset(tmp_path, atlas="toy")
    assert dataset.fc_covariance is None
    assert "sub-01_task-rest_run-1_atlas-toy_timeseries.tsv" in dataset.metadata["tangent_source"]
    assert any("time series not used" in r.getMessage() and "7 columns" in r.getMessage() for r in caplog.records)


def test_time_series_of_another_width_are_not_used_without_region_names(tmp_path, rng):
    ids = make_connectomes(tmp_path, rng, header=False)
    for pid in ids:
        write_runs(tmp_path / pid / "func", f"{pid}_task-rest", [rng.standard_normal((25, N + 1))])
    dataset, _ = build_dataset(tmp_path, atlas="toy")
    assert dataset.fc_covariance is None and f"{N + 1} columns but the connectomes have {N}" in \
        dataset.metadata["tangent_source"]
