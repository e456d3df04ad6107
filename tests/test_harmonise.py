"""Site harmonisation (ComBat) and covariate regression: fitted on training subjects only."""

import numpy as np
import pandas as pd
import pytest

from connex.errors import ConfigError
from connex.evaluation.harmonise import ComBat, CovariateRegression, covariate_matrix, harmonise_dataset
from connex.model.dataset import ConnectomeDataset


def site_data(rng, s=90, p=300):
    """Three sites: B shifted by +1, C scaled by 2; a true age effect of 0.05 per year on every feature."""
    site = np.repeat(["A", "B", "C"], s // 3)
    age = rng.uniform(20, 60, s)
    noise = rng.standard_normal((s, p))
    noise[site == "C"] *= 2.0
    X = noise + 0.05 * age[:, None] + np.where(site == "B", 1.0, 0.0)[:, None]
    return X, site, age


def test_combat_removes_site_location_and_scale_and_keeps_covariate_effects(rng):
    X, site, age = site_data(rng)
    out = ComBat().fit(X, site, age[:, None]).transform(X, site, age[:, None])
    residual = out - 0.05 * age[:, None]
    means = np.array([residual[site == s].mean() for s in "ABC"])
    sds = np.array([residual[site == s].std() for s in "ABC"])
    assert np.ptp(means) < 0.05 and np.ptp(sds) / sds.mean() < 0.05  # before: 1.0 and ~0.7
    slope = np.polyfit(age, out.mean(1), 1)[0]
    assert slope == pytest.approx(0.05, abs=0.005)  # the protected covariate survives


def test_combat_adjusts_test_subjects_with_training_estimates_only(rng):
    X, site, age = site_data(rng)
    train = np.arange(len(X)) % 3 != 0
    combat = ComBat().fit(X[train], site[train])
    before = combat.transform(X, site)
    X_changed = X.copy()
    X_changed[~train] += 5.0  # whatever the test subjects hold, the training fit is the same
    after = ComBat().fit(X_changed[train], site[train]).transform(X_changed, site)
    np.testing.assert_allclose(after[train], before[train])
    # a test subject is adjusted alone: its output depends on its own values and the fit only
    one = np.flatnonzero(~train)[0]
    np.testing.assert_allclose(combat.transform(X[[one]], site[[one]]), before[[one]])


def test_combat_refuses_sites_it_never_saw_and_single_subject_sites(rng):
    X, site, _ = site_data(rng)
    combat = ComBat().fit(X[site != "C"], site[site != "C"])
    with pytest.raises(ConfigError, match=r"cannot adjust subjects of \['C'\]"):
        combat.transform(X, site)
    with pytest.raises(ConfigError, match="site 'C' has 1"):
        ComBat().fit(X[:61], site[:61])


def test_covariate_regression_removes_the_training_slope(rng):
    age = rng.uniform(20, 60, 90)
    X = rng.standard_normal((90, 300)) + 0.05 * age[:, None]
    train = np.arange(len(X)) < 60
    out = CovariateRegression().fit(X[train], age[train, None]).transform(X, age[:, None])
    assert abs(np.polyfit(age, out.mean(1), 1)[0]) < 0.005
    assert out[train].mean() == pytest.approx(X[train].mean())  # the training mean is kept


def participants(age, sex, site):
    n = len(age)
    return pd.DataFrame({"participant_id": [f"sub-{i:02d}" for i in range(n)], "label": ["HC", "SZ"] * (n // 2),
                         "site": site, "age": age, "sex": sex})


def test_covariate_matrix_skips_what_the_cohort_lacks_and_fills_gaps_with_the_training_mean():
    table = participants(["n/a"] * 4, ["n/a"] * 4, "X")
    C, used = covariate_matrix(table, ["age", "sex"], np.arange(4))
    assert used == [] and C.shape == (4, 0)
    table = participants([10.0, np.nan, 30.0, 50.0], ["F", "M", "m", "F"], "X")
    C, used = covariate_matrix(table, ["age", "sex"], np.array([0, 2, 3]))
    assert used == ["age", "sex"]
    np.testing.assert_allclose(C[:, 0], [10, 30, 30, 50])  # the missing age is the training mean
    np.testing.assert_allclose(C[:, 1], [0, 1, 1, 0])  # sex is case-insensitive, first level the reference


def test_harmonise_dataset_works_on_edge_weights_and_is_off_for_one_site(rng):
    n, s = 6, 40
    site = np.repeat(["A", "B"], s // 2)
    fc = np.empty((s, n, n))
    for i in range(s):
        series = rng.standard_normal((200, n))
        series[:, 1] += (1.5 if site[i] == "B" else 0.3) * series[:, 0]  # site B: much stronger edge (0, 1)
        fc[i] = np.corrcoef(series.T)
    dataset = ConnectomeDataset(participants=participants([30.0] * s, ["F"] * s, site), classes=["HC", "SZ"],
                                regions=[f"R{i}" for i in range(n)], sc=np.zeros((s, 0, 0)), fc=fc,
                                modalities=("fc",))
    train = np.arange(s) % 4 != 0
    out, info = harmonise_dataset(dataset, train, site="auto", covariates=("age", "sex"))
    assert info == {"harmonised_sites": ["A", "B"], "regressed_covariates": []}  # one age, one sex: nothing to fit
    z = np.arctanh(out.fc[:, 0, 1])
    assert abs(z[site == "A"].mean() - z[site == "B"].mean()) < 0.05  # before: about 0.9
    assert np.allclose(out.fc, out.fc.transpose(0, 2, 1)) and np.all(np.abs(out.fc) <= 1)
    np.testing.assert_allclose(np.diagonal(out.fc, axis1=1, axis2=2), 1.0)
    assert dataset.fc is fc  # the input dataset is unchanged
    one_site = ConnectomeDataset(**{**dataset.__dict__, "participants": dataset.participants.assign(site="A")})
    same, info = harmonise_dataset(one_site, train, site="auto")
    assert same is one_site and info["harmonised_sites"] == []
    with pytest.raises(ConfigError, match="one site"):
        harmonise_dataset(one_site, train, site="combat")
    # leave-site-out: the test site was never seen, so auto leaves the data alone
    held_out = site == "B"
    assert harmonise_dataset(dataset, np.flatnonzero(~held_out), site="auto")[0] is dataset


def test_features_constant_within_a_site_pass_through_unchanged(rng):
    """A sparse SC edge: zero in every training subject of site A (log1p(0)); estimating A's scale
    there would divide by ~0 and blow up a test subject of A that has streamlines on it."""
    X, site, _ = site_data(rng, p=50)
    X[site == "A", 0] = 0.0
    train = np.arange(len(X)) % 5 != 0
    combat = ComBat().fit(X[train], site[train])
    assert not combat.adjusted_[0] and combat.adjusted_[1:].all()
    probe = X[[np.flatnonzero((site == "A") & ~train)[0]]].copy()
    probe[0, 0] = 2.5
    out = combat.transform(probe, np.array(["A"]))
    assert out[0, 0] == 2.5 and np.all(np.abs(out) < 10)


def test_a_training_fold_too_small_for_the_fit_is_left_alone(rng):
    """The demo's folds: 4 training subjects, 2 sites, age and sex: an exact fit, no residual."""
    n, s = 4, 6
    fc = np.stack([np.corrcoef(rng.standard_normal((50, n)).T) for _ in range(s)])
    table = participants(rng.uniform(20, 60, s), ["F", "M"] * 3, ["A", "A", "B", "B", "A", "B"])
    dataset = ConnectomeDataset(participants=table, classes=["HC", "SZ"], regions=[f"R{i}" for i in range(n)],
                                sc=np.zeros((s, 0, 0)), fc=fc, modalities=("fc",))
    train = np.arange(4)
    same, info = harmonise_dataset(dataset, train, site="auto", covariates=("age", "sex"))
    assert same is dataset and info == {"harmonised_sites": [], "regressed_covariates": []}
    with pytest.raises(ConfigError, match="needs at least 14 training subjects; this split has 4"):
        harmonise_dataset(dataset, train, site="combat", covariates=("age", "sex"))
