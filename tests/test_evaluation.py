"""Cross-validation, training and metrics: same splits for every model, nothing fitted on test folds."""

import numpy as np
import pandas as pd
import pytest
import torch

from connex.errors import ConfigError, ConnectomeError
from connex.evaluation.baselines import edge_vectors, fit_linear
from connex.evaluation.folds import build_graphs, run_fold
from connex.evaluation.metrics import (
    BASELINE_COLUMNS,
    classification_metrics,
    compare_to_baseline,
    corrected_resampled_ttest,
    fold_metrics,
    summarise_metrics,
)
from connex.evaluation.splits import (
    can_cross_validate,
    make_splits,
    min_subjects_per_class,
    split_indices,
    training_subjects_per_class,
    trainings_per_split,
)
from connex.model.dataset import ConnectomeDataset
from connex.model.training import TrainParams, load_checkpoint, resolve_device, validation_split

N = 10


def toy_dataset(rng, n_subjects=40, n=N, effect=1.5, sites=2) -> ConnectomeDataset:
    """SZ have a weaker SC edge (0, 1) and a weaker FC edge (2, 3): complementary, learnable."""
    y = np.arange(n_subjects) % 2
    sc = rng.poisson(30, size=(n_subjects, n, n)).astype(float)
    sc[y == 1, 0, 1] = rng.poisson(30 / (1 + effect), size=(y == 1).sum())
    sc = np.triu(sc, 1) + np.transpose(np.triu(sc, 1), (0, 2, 1))
    fc = np.empty((n_subjects, n, n))
    for s in range(n_subjects):
        series = rng.standard_normal((120, n))
        if y[s] == 0:
            series[:, 3] += effect * series[:, 2]
        fc[s] = np.corrcoef(series.T)
    participants = pd.DataFrame({"participant_id": [f"sub-{i + 1:03d}" for i in range(n_subjects)],
                                 "label": np.array(["HC", "SZ"])[y],
                                 "site": [f"S{i % sites + 1}" for i in range(n_subjects)],
                                 "age": 30.0, "sex": "F"})
    return ConnectomeDataset(participants=participants, classes=["HC", "SZ"], regions=[f"R{i}" for i in range(n)],
                             sc=sc, fc=fc)


FAST = TrainParams(epochs=60, batch_size=16, learning_rate=3e-3, patience=10, ensemble=1)
SMALL = {"hidden": 16, "layers": 1, "attention_heads": 2, "mixer_blocks": 1, "dropout": 0.1}
GRAPH = {"sparsify": "topk", "k": 3, "density": 0.1}


def test_classification_metrics_by_hand():
    y = np.array([0, 0, 0, 1, 1])
    predicted = np.array([0, 1, 0, 1, 0])
    score = np.array([0.1, 0.6, 0.2, 0.9, 0.4])
    metrics = classification_metrics(y, predicted, score)
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    assert metrics["sensitivity"] == pytest.approx(1 / 2) and metrics["specificity"] == pytest.approx(2 / 3)
    assert metrics["balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert metrics["roc_auc"] == pytest.approx(5 / 6)  # 5 of the 6 (SZ, HC) pairs ranked right
    assert metrics["f1"] == pytest.approx(2 * 0.5 * 0.5 / (0.5 + 0.5))


def test_repeated_stratified_splits_test_every_subject_once_per_repeat(rng):
    dataset = toy_dataset(rng, n_subjects=30)
    splits = make_splits(dataset, n_folds=5, n_repeats=2, seed=3)
    assert sorted(splits["split"].unique()) == [f"r{r:02d}f{f:02d}" for r in (1, 2) for f in range(1, 6)]
    tested = splits[splits["role"] == "test"].groupby("repeat")["participant_id"]
    assert all(sorted(ids) == dataset.subjects for _, ids in tested)
    for split in splits["split"].unique():
        _, test = split_indices(dataset, splits, split)
        assert np.bincount(dataset.y[test]).tolist() == [3, 3]  # stratified
    first = splits[splits["repeat"] == 1].query("role == 'test'").groupby("fold")["participant_id"].apply(set)
    second = splits[splits["repeat"] == 2].query("role == 'test'").groupby("fold")["participant_id"].apply(set)
    assert list(first) != list(second)  # repeats reshuffle
    assert make_splits(dataset, n_folds=5, n_repeats=2, seed=3).equals(splits)  # seeded


def test_leave_site_out_splits(rng):
    dataset = toy_dataset(rng, n_subjects=12, sites=3)
    splits = make_splits(dataset, scheme="leave_site_out")
    assert sorted(splits["split"].unique()) == ["site-S1", "site-S2", "site-S3"]
    test = splits[(splits["split"] == "site-S2") & (splits["role"] == "test")]["participant_id"]
    assert set(test) == set(dataset.participants.loc[dataset.participants["site"] == "S2", "participant_id"])


def test_fewer_subjects_of_a_class_than_folds_is_a_clear_error(rng):
    dataset = toy_dataset(rng, n_subjects=8)
    with pytest.raises(ConnectomeError, match=r"at least 5 subjects of each class; the dataset has .*'HC': 4"):
        make_splits(dataset, n_folds=5)


def test_validation_split_is_carved_from_the_training_fold_only(rng):
    y = np.arange(40) % 2
    train = np.arange(10, 40)
    fit, val = validation_split(y, train, fraction=0.2, seed=0)
    assert set(fit) | set(val) == set(train) and not set(fit) & set(val)
    assert len(val) == 6 and np.bincount(y[val]).tolist() == [3, 3]
    with pytest.raises(ValueError, match="at least two of each class"):
        validation_split(y, np.array([0, 1, 2]), fraction=0.2, seed=0)


def test_graphs_and_linear_baselines_do_not_see_the_test_fold(rng):
    dataset = toy_dataset(rng)
    splits = make_splits(dataset, n_folds=4, n_repeats=1)
    train, test = split_indices(dataset, splits, "r01f01")
    graphs = build_graphs(dataset, train, **GRAPH)
    corrupted = ConnectomeDataset(dataset.participants, dataset.classes, dataset.regions,
                                  dataset.sc.copy(), dataset.fc.copy())
    corrupted.sc[test] *= 100.0
    corrupted.fc[test] = np.eye(N)
    again = build_graphs(corrupted, train, **GRAPH)
    for modality in ("sc", "fc"):  # training subjects' graphs do not change when test subjects do
        assert np.array_equal(graphs[modality].features[train], again[modality].features[train])
    X, Xc = edge_vectors(dataset), edge_vectors(corrupted)
    y = dataset.y
    clean, dirty = fit_linear("logistic_regression", X, y, train, 0), fit_linear("logistic_regression", Xc, y, train, 0)
    assert np.array_equal(clean[-1].coef_, dirty[-1].coef_)
    assert np.allclose(clean[0].mean_, X[train].mean(0))


def test_run_fold_trains_every_model_on_the_same_split_and_is_reproducible(rng, tmp_path):
    torch.set_num_threads(1)
    dataset = toy_dataset(rng, n_subjects=60)
    splits = make_splits(dataset, n_folds=4, n_repeats=1)
    models = ["connex", "connex_sc", "connex_fc", "early_fusion", "logistic_regression", "linear_svm"]
    out = run_fold(dataset, splits, "r01f02", models=models, graph_params=GRAPH, model_params=SMALL,
                   train_params=FAST, checkpoint_dir=tmp_path)
    predictions = out["predictions"]
    _, test = split_indices(dataset, splits, "r01f02")
    for model in models:
        rows = predictions[predictions["model"] == model]
        assert sorted(rows["participant_id"]) == sorted(np.array(dataset.subjects)[test])
    metrics = fold_metrics(predictions).set_index("model")
    # the toy effect is strong: the linear models and ConneX find it on 15 test subjects (measured:
    # ConneX 1.0, SC only 0.7, FC only 0.98, logistic regression 0.93; chance is 0.5)
    assert metrics.loc["logistic_regression", "roc_auc"] >= 0.85
    assert metrics.loc["connex", "roc_auc"] >= 0.9
    assert set(out["importance"]["model"]) == {"connex", "connex_sc", "connex_fc", "early_fusion",
                                               "logistic_regression"}
    assert out["info"]["n_train"] == 45 and out["info"]["n_test"] == 15 and out["info"]["n_validation"] == 9
    # checkpoints are plain state dicts: they load with weights_only=True into a fresh model
    from connex.evaluation.folds import make_graph_model, model_inputs

    inputs = model_inputs("connex", build_graphs(dataset, np.arange(60), **GRAPH))
    model = load_checkpoint(make_graph_model("connex", inputs, SMALL), tmp_path / "split-r01f02_model-connex.pt")
    assert isinstance(model, torch.nn.Module)
    # same seed, same numbers (CPU)
    again = run_fold(dataset, splits, "r01f02", models=["connex", "linear_svm"], graph_params=GRAPH,
                     model_params=SMALL, train_params=FAST)["predictions"]
    for model in ("connex", "linear_svm"):
        assert np.array_equal(again[again["model"] == model]["score"].to_numpy(),
                              predictions[predictions["model"] == model]["score"].to_numpy())


def test_importance_finds_the_effect_edges(rng):
    torch.set_num_threads(1)
    dataset = toy_dataset(rng, n_subjects=60, effect=3.0)
    splits = make_splits(dataset, n_folds=3, n_repeats=1)
    out = run_fold(dataset, splits, "r01f01", models=["logistic_regression"], graph_params=GRAPH,
                   model_params=SMALL, train_params=FAST)
    importance = out["importance"]
    for modality, pair in (("sc", (1, 2)), ("fc", (3, 4))):
        table = importance[importance["modality"] == modality]
        top = table.nlargest(1, "importance").iloc[0]
        assert (top["region_i"], top["region_j"]) == pair


def test_summary_gives_mean_and_sd_over_splits_and_a_permutation_p_value():
    per_split = pd.DataFrame({"model": ["connex"] * 3, "split": ["a", "b", "c"], "n_test": 10,
                              "accuracy": [0.7, 0.8, 0.9], "balanced_accuracy": 0.8, "sensitivity": 0.8,
                              "specificity": 0.8, "roc_auc": [0.8, 0.9, 1.0], "f1": 0.8})
    null = pd.DataFrame({"split": "a", "model": "connex", "permutation": [1, 2, 3, 4],
                         "roc_auc": [0.5, 0.95, 0.4, 0.6]})
    summary = summarise_metrics(per_split, null).iloc[0]
    assert summary["accuracy_mean"] == pytest.approx(0.8) and summary["accuracy_std"] == pytest.approx(0.1)
    assert summary["p_value"] == pytest.approx((1 + 1) / (1 + 4))  # one permutation reaches 0.9


def test_corrected_resampled_ttest_by_hand():
    from scipy import stats

    d = np.array([0.1, 0.2, 0.0, 0.1])  # mean 0.1, sample variance 0.02 / 3
    t, p = corrected_resampled_ttest(d, test_fraction=0.2)  # n_test / n_train = 0.2 / 0.8
    expected_t = 0.1 / np.sqrt((1 / 4 + 0.25) * (0.02 / 3))
    assert t == pytest.approx(expected_t) and t == pytest.approx(np.sqrt(3))
    assert p == pytest.approx(2 * stats.t.sf(expected_t, df=3))
    # the plain one-sample t-test ignores the overlap of training sets: here (1/J + 1/4) / (1/J) = 2,
    # so its t is sqrt(2) times larger, and it would call the difference significant at 0.1
    plain = stats.ttest_1samp(d, 0.0)
    assert plain.statistic == pytest.approx(0.1 / np.sqrt(0.02 / 3 / 4)) == pytest.approx(t * np.sqrt(2))
    assert plain.pvalue < 0.1 < p
    assert corrected_resampled_ttest(-d, test_fraction=0.2) == pytest.approx((-t, p))  # two-sided
    assert all(np.isnan(corrected_resampled_ttest(np.full(4, 0.1), test_fraction=0.2)))  # no variance
    assert all(np.isnan(corrected_resampled_ttest(np.array([0.1]), test_fraction=0.2)))
    with pytest.raises(ValueError, match="'test_fraction' must be between 0 and 1"):
        corrected_resampled_ttest(d, test_fraction=1.0)
    with pytest.raises(ValueError, match="without NaN"):
        corrected_resampled_ttest(np.array([0.1, np.nan]), test_fraction=0.2)


def test_graph_models_are_compared_to_the_best_baseline_split_by_split():
    splits = ["r01f01", "r01f02", "r01f03", "r01f04", "r02f01"]
    auc = {"connex": [0.8, 0.8, 0.8, 0.85, 0.9],
           "connex_fc": [0.6, np.nan, 0.9, 0.75, 0.5],  # one class in its r01f02 test fold
           "logistic_regression": [0.7, 0.6, 0.8, 0.75, np.nan],  # mean 0.7125 over its 4 defined splits
           "linear_svm": [0.6, 0.6, 0.7, 0.7, 0.9]}  # mean 0.7
    per_fold = pd.DataFrame([{"model": m, "split": s, "n_test": 10, "roc_auc": a}
                             for m, values in auc.items() for s, a in zip(splits, values)])
    table = compare_to_baseline(per_fold, n_subjects=50).set_index("model")
    assert list(table.reset_index().columns) == ["model", *BASELINE_COLUMNS]
    assert table.index.tolist() == ["connex", "connex_fc", "logistic_regression", "linear_svm"]
    connex = table.loc["connex"]  # r02f01 dropped: the baseline's AUC is undefined there
    assert connex["best_baseline"] == "logistic_regression" and connex["n_splits_paired"] == 4
    assert connex["auc_diff_mean"] == pytest.approx(0.1)  # differences 0.1, 0.2, 0.0, 0.1
    assert connex["auc_diff_std"] == pytest.approx(np.sqrt(0.02 / 3))
    assert connex["splits_won"] == 3 and connex["splits_tied"] == 1
    t, p = corrected_resampled_ttest(np.array([0.1, 0.2, 0.0, 0.1]), test_fraction=10 / 50)
    assert connex["auc_diff_t"] == pytest.approx(t) and connex["auc_diff_p"] == pytest.approx(p)
    fc = table.loc["connex_fc"]  # differences -0.1, 0.1, 0.0 on r01f01, r01f03, r01f04
    assert fc["n_splits_paired"] == 3 and fc["auc_diff_mean"] == pytest.approx(0.0)
    assert fc["splits_won"] == 1 and fc["splits_tied"] == 1
    assert table.loc[["logistic_regression", "linear_svm"]].isna().all().all()  # baselines: empty
    # without a baseline the columns are still there, empty
    alone = compare_to_baseline(per_fold[per_fold["model"] == "connex"], n_subjects=50)
    assert list(alone.columns) == ["model", *BASELINE_COLUMNS] and alone.iloc[0, 1:].isna().all()


def test_device_auto_is_cpu_without_cuda():
    if torch.cuda.is_available():
        assert resolve_device("auto").type == "cuda"
    else:
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda")


def test_permutations_retrain_on_shuffled_training_labels(rng):
    dataset = toy_dataset(rng, n_subjects=60, effect=3.0)
    splits = make_splits(dataset, n_folds=3, n_repeats=1)
    out = run_fold(dataset, splits, "r01f01", models=["logistic_regression"], graph_params=GRAPH,
                   model_params=SMALL, train_params=FAST, permutations=4)
    null = out["permutations"]
    assert len(null) == 4 and null["permutation"].tolist() == [1, 2, 3, 4]
    observed = fold_metrics(out["predictions"])["roc_auc"].iloc[0]
    assert observed > 0.9 and null["roc_auc"].mean() < 0.75  # shuffled labels carry no effect
    assert null["roc_auc"].nunique() > 1  # each permutation is a different shuffle


def test_nested_search_picks_a_candidate_and_the_edge_mask_is_trained(rng):
    torch.set_num_threads(1)
    dataset = toy_dataset(rng, n_subjects=48)
    splits = make_splits(dataset, n_folds=4, n_repeats=1)
    quick = TrainParams(epochs=8, batch_size=16, learning_rate=3e-3, patience=4, mask_epochs=3, ensemble=1)
    out = run_fold(dataset, splits, "r01f01", models=["connex"], graph_params=GRAPH,
                   model_params={**SMALL, "edge_mask": True}, train_params=quick,
                   search={"hidden": [8, 16]}, inner_folds=2)
    assert out["info"]["connex_hyperparameters"]["hidden"] in (8, 16)
    importance = out["importance"]
    mask = importance[importance["kind"] == "edge_mask"]
    assert set(mask["modality"]) == {"sc", "fc"} and len(mask) == 2 * N * (N - 1) // 2
    assert mask["importance"].between(0, 1).all() and mask["importance"].std() > 0  # the mask was trained
    assert (out["history"]["phase"] == "mask").sum() == 3


def test_a_training_fold_short_of_a_class_is_a_clear_error(rng):
    dataset = toy_dataset(rng, n_subjects=8)  # 4 per class: 4 folds leave 3 per class in training
    with pytest.raises(ConnectomeError, match=r"Split r01f01: its training fold has .* at least 4 of each class"):
        make_splits(dataset, n_folds=4, min_train_per_class=4)
    dataset.participants.loc[2, "site"] = np.nan
    with pytest.raises(ConnectomeError, match=r"gives none for \['sub-003'\]"):
        make_splits(dataset, scheme="leave_site_out")


def test_cross_validation_needs_two_classes_each_filling_the_folds():
    assert min_subjects_per_class("kfold", 5) == 5 and min_subjects_per_class("leave_site_out", 5) == 1
    assert can_cross_validate({"HC": 5, "SZ": 5}, scheme="kfold", n_folds=5)
    assert not can_cross_validate({"HC": 5, "SZ": 4}, scheme="kfold", n_folds=5)
    assert not can_cross_validate({"HC": 12}, scheme="kfold", n_folds=3)  # one class
    assert not can_cross_validate({}, scheme="kfold", n_folds=3)  # no labelled participant
    assert can_cross_validate(pd.Series({"HC": 1, "SZ": 2}), scheme="leave_site_out", n_folds=5)
    with pytest.raises(ConfigError, match="'scheme' must be one of"):
        min_subjects_per_class("loso", 5)


def test_trainings_per_split_count_permutations_and_the_nested_search():
    assert trainings_per_split(search={}, inner_folds=3, permutations=0) == 1
    assert trainings_per_split(search=None, inner_folds=3, permutations=4) == 5
    # 2 x 3 candidates on each of 2 inner folds, then the final training.
    assert trainings_per_split(search={"hidden": [16, 32], "layers": [1, 2, 3]}, inner_folds=2, permutations=0) == 13
    assert training_subjects_per_class(search={}, inner_folds=5) == 2
    assert training_subjects_per_class(search={"hidden": [16]}, inner_folds=5) == 5
    assert training_subjects_per_class(search={"hidden": [16]}, inner_folds=1) == 2


def test_permutations_with_a_nested_search_are_refused(rng):
    dataset = toy_dataset(rng, n_subjects=20)
    splits = make_splits(dataset, n_folds=2, n_repeats=1)
    with pytest.raises(ValueError, match="permutation test with a nested search"):
        run_fold(dataset, splits, "r01f01", models=["connex"], graph_params=GRAPH, model_params=SMALL,
                 train_params=FAST, search={"hidden": [8]}, permutations=2)


def test_saliency_in_batches_equals_one_batch_and_leaves_no_parameter_gradients(rng):
    from connex.evaluation.folds import make_graph_model, model_inputs
    from connex.evaluation.importance import saliency

    dataset = toy_dataset(rng, n_subjects=40)
    inputs = model_inputs("connex", build_graphs(dataset, np.arange(30), **GRAPH))
    torch.manual_seed(0)
    model = make_graph_model("connex", inputs, SMALL)
    small = saliency(model, inputs, np.arange(30, 40), TrainParams(batch_size=3))
    whole = saliency(model, inputs, np.arange(30, 40), TrainParams(batch_size=32))
    assert set(small) == {"sc", "fc"} and small["sc"].shape == (N, N)
    assert all(np.allclose(small[k], whole[k], atol=1e-6) for k in small)
    assert np.allclose(small["fc"], small["fc"].T) and small["fc"].max() > 0
    assert all(p.grad is None for p in model.parameters())


def test_fc_only_dataset_trains_the_fc_models_on_fc_edges_alone(rng):
    torch.set_num_threads(1)
    paired = toy_dataset(rng, n_subjects=40)
    n_subjects = len(paired.subjects)
    dataset = ConnectomeDataset(participants=paired.participants, classes=paired.classes, regions=paired.regions,
                                sc=np.zeros((n_subjects, 0, 0)), fc=paired.fc, modalities=("fc",))
    iu = np.triu_indices(N, 1)
    assert np.allclose(edge_vectors(dataset), np.arctanh(np.clip(paired.fc[:, iu[0], iu[1]], -0.999999, 0.999999)))
    assert edge_vectors(dataset).shape == (n_subjects, N * (N - 1) // 2)
    splits = make_splits(dataset, n_folds=4, n_repeats=1)
    models = ["connex_fc", "logistic_regression", "linear_svm", "tangent_logistic_regression"]
    out = run_fold(dataset, splits, "r01f01", models=models, graph_params=GRAPH, model_params=SMALL,
                   train_params=FAST)
    assert sorted(set(out["predictions"]["model"])) == sorted(models)
    coefficients = out["importance"][out["importance"]["model"] == "logistic_regression"]
    assert set(coefficients["modality"]) == {"fc"} and len(coefficients) == len(iu[0])
    with pytest.raises(ConfigError, match=r"\['connex'\] need a modality this dataset lacks"):
        run_fold(dataset, splits, "r01f01", models=["connex"], graph_params=GRAPH, model_params=SMALL,
                 train_params=FAST)


def test_importance_figure_shows_the_fc_only_model_or_no_graph_model(tmp_path):
    from connex.evaluation.importance import region_importance
    from connex.evaluation.results import plot_importance

    regions = [f"R{i}" for i in range(N)]
    iu = np.triu_indices(N, 1)
    edges = pd.DataFrame({"model": "connex_fc", "modality": "fc", "kind": "saliency", "region_i": iu[0] + 1,
                          "region_j": iu[1] + 1, "importance": np.arange(len(iu[0]), dtype=float)})
    plot_importance(edges, region_importance(edges, regions), regions, tmp_path / "fc.png")
    empty = pd.DataFrame(columns=["model", "modality", "kind", "region_i", "region_j", "importance"])
    plot_importance(empty, region_importance(empty, regions), regions, tmp_path / "none.png")
    assert (tmp_path / "fc.png").stat().st_size > 1000 and (tmp_path / "none.png").stat().st_size > 1000


def test_tangent_baseline_fits_its_reference_on_the_training_fold_and_finds_the_fc_effect(rng):
    from connex.evaluation.baselines import tangent_vectors
    from connex.evaluation.tangent import TangentSpace

    dataset = toy_dataset(rng, n_subjects=40)
    train = np.arange(30)
    X = tangent_vectors(dataset, train)
    assert X.shape == (40, N * (N + 1) // 2)
    assert np.allclose(X, TangentSpace().fit(dataset.fc[train]).transform(dataset.fc))
    changed = dataset.fc.copy()
    changed[30:] = np.eye(N)  # what the test subjects hold cannot move the reference
    moved = ConnectomeDataset(participants=dataset.participants, classes=dataset.classes, regions=dataset.regions,
                              sc=dataset.sc, fc=changed)
    assert np.allclose(tangent_vectors(moved, train)[:30], X[:30])
    zero_diagonal = dataset.fc * (1 - np.eye(N))  # r with 0 on the diagonal, as XCP-D writes it
    written = ConnectomeDataset(participants=dataset.participants, classes=dataset.classes,
                                regions=dataset.regions, sc=dataset.sc, fc=zero_diagonal)
    assert np.allclose(tangent_vectors(written, train), X)
    splits = make_splits(dataset, n_folds=4, n_repeats=1)
    out = run_fold(dataset, splits, "r01f01", models=["tangent_logistic_regression"], graph_params=GRAPH,
                   model_params=SMALL, train_params=FAST)
    # the toy FC effect (edge 2-3 weaker in SZ) is found on 10 test subjects (measured AUC 1.0)
    assert fold_metrics(out["predictions"]).set_index("model").loc["tangent_logistic_regression", "roc_auc"] >= 0.8


def test_split_importance_round_trips_through_its_compact_file(tmp_path):
    from connex.evaluation.importance import edge_table, read_importance, write_importance

    n = 5
    iu = np.triu_indices(n, 1)
    table = pd.concat([edge_table("connex", "fc", "saliency", np.arange(10) / 7, iu),
                       edge_table("logistic_regression", "sc", "coefficient", -np.arange(10.0), iu)],
                      ignore_index=True)
    shuffled = table.sample(frac=1.0, random_state=0)  # rows in any order land on their edge
    back = read_importance(write_importance(shuffled, tmp_path / "importance.npz", n_regions=n))
    order = ["model", "region_i", "region_j"]
    pd.testing.assert_frame_equal(back.sort_values(order, ignore_index=True),
                                  table.sort_values(order, ignore_index=True), check_exact=False, atol=1e-6)
    empty = read_importance(write_importance(table.iloc[:0], tmp_path / "none.npz", n_regions=n))
    assert empty.empty and list(empty.columns) == list(table.columns)


def test_an_ensemble_over_folds_validates_each_member_on_its_own_fold(rng):
    from dataclasses import replace

    from connex.evaluation.folds import ensemble_size, fit_graph_model, model_inputs

    torch.set_num_threads(1)
    dataset = toy_dataset(rng, n_subjects=40)
    y = dataset.y
    train = np.arange(30)
    inputs = model_inputs("connex_fc", build_graphs(dataset, train, **GRAPH))
    params = replace(FAST, epochs=5, ensemble=3)
    model, _, results = fit_graph_model("connex_fc", inputs, SMALL, y, train, params, val_fraction=0.2, seed=0)
    assert len(model.members) == 3 and len(results) == 3
    # members differ (own seed, own fold) and the ensemble is their mean
    first, second = (m.state_dict()["heads.fused.output.bias"] for m in model.members[:2])
    assert not torch.equal(first, second)
    assert ensemble_size(5, y[:8]) == 4 and ensemble_size(5, np.array([0, 0, 0, 1])) == 1
    assert ensemble_size("auto", np.arange(199) % 2) == 5 and ensemble_size("auto", np.arange(200) % 2) == 1
    out = run_fold(dataset, make_splits(dataset, n_folds=4, n_repeats=1), "r01f01", models=["connex_fc"],
                   graph_params=GRAPH, model_params=SMALL, train_params=params,
                   harmonise={"site": "auto", "covariates": ["age", "sex"]})
    assert set(out["history"]["member"]) == {1, 2, 3} and len(out["info"]["connex_fc_best_epoch"]) == 3
    # two sites of the toy cohort: ComBat on; age and sex are constant there, so not regressed
    assert out["info"]["harmonised_sites"] == ["S1", "S2"] and out["info"]["regressed_covariates"] == []


def test_linear_baselines_weigh_the_classes_and_search_a_wide_c_grid(rng):
    """A 3:1 cohort: with balanced class weights even the most regularised fit (C 1e-5, where an
    unweighted model predicts the majority class for everyone) predicts both classes."""
    from connex.evaluation.baselines import C_GRID

    y = (np.arange(48) % 4 == 0).astype(int)
    X = rng.standard_normal((48, 30)) + 0.8 * y[:, None] * (np.arange(30) < 3)
    train = np.arange(48)
    for name in ("logistic_regression", "linear_svm"):
        fitted = fit_linear(name, X, y, train, 0)
        assert fitted[-1].class_weight == "balanced" and fitted[-1].C in C_GRID
    weakest = fit_linear("logistic_regression", X, y, train, 0).set_params(logisticregression__C=1e-5).fit(X, y)
    assert set(weakest.predict(X)) == {0, 1}
    unweighted = weakest.set_params(logisticregression__class_weight=None).fit(X, y)
    assert set(unweighted.predict(X)) == {0}
