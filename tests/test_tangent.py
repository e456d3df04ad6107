"""Tangent-space embedding of FC matrices: exact, hand-checkable cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from connex.errors import ConfigError
from connex.evaluation.tangent import TangentSpace, correlation_from_fisher_z, make_spd


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def covariances(rng, n_subjects: int, n_regions: int, n_times: int) -> np.ndarray:
    """Well-conditioned sample covariances ``(s, n, n)`` (more time points than regions)."""
    x = rng.standard_normal((n_subjects, n_times, n_regions)) * rng.uniform(0.5, 2.0, n_regions)
    x -= x.mean(axis=1, keepdims=True)
    return np.einsum("sti,stj->sij", x, x) / n_times


def vec_to_matrix(vector: np.ndarray, n: int) -> np.ndarray:
    """Undo the sqrt(2) weighting of the upper triangle (written independently of the module)."""
    matrix = np.zeros((n, n))
    k = 0
    for i in range(n):
        for j in range(i + 1):
            matrix[i, j] = matrix[j, i] = vector[k] if i == j else vector[k] / np.sqrt(2)
            k += 1
    return matrix


def test_tangent_vector_of_the_reference_is_zero(rng):
    train = covariances(rng, 6, 7, 40)
    ts = TangentSpace().fit(train)
    assert ts.mean_.shape == (7, 7) and ts.n_regions_ == 7
    # mean_ is SPD already, so make_spd(mean_) changes it; with shrinkage 0 it is left as is.
    ts0 = TangentSpace(shrinkage=0.0).fit(train)
    out = ts0.transform(ts0.mean_[None])
    assert out.shape == (1, 7 * 8 // 2) and out.dtype == np.float64
    np.testing.assert_allclose(out, 0.0, atol=1e-10)
    # The mean of the whitened training matrices' logs is zero at the Riemannian mean (its definition).
    np.testing.assert_allclose(ts.transform(train).mean(axis=0), 0.0, atol=1e-7)
    np.testing.assert_allclose(ts0.whitening_ @ ts0.mean_ @ ts0.whitening_, np.eye(7), atol=1e-10)


def test_commuting_diagonal_matrices_give_elementwise_geometric_mean_and_log_ratios():
    diagonals = np.array([[1.0, 4.0, 2.0, 0.5, 3.0],
                          [4.0, 1.0, 8.0, 2.0, 3.0],
                          [2.0, 16.0, 4.0, 1.0, 3.0]])
    matrices = np.stack([np.diag(d) for d in diagonals])
    ts = TangentSpace(shrinkage=0.0).fit(matrices)
    expected_mean = np.cbrt(diagonals.prod(axis=0))  # [2, 4, 4, 1, 3]
    np.testing.assert_allclose(expected_mean, [2.0, 4.0, 4.0, 1.0, 3.0])
    np.testing.assert_allclose(ts.mean_, np.diag(expected_mean), atol=1e-12)
    out = ts.transform(matrices)
    assert out.shape == (3, 15)
    for vector, d in zip(out, diagonals):
        np.testing.assert_allclose(vec_to_matrix(vector, 5), np.diag(np.log(d / expected_mean)), atol=1e-12)
    # e.g. the first subject, first region: log(1 / 2)
    assert out[0, 0] == pytest.approx(np.log(0.5))


def test_sqrt2_weighting_and_order_of_the_vector():
    # A tangent matrix with one off-diagonal entry: the vector norm is its Frobenius norm.
    mean = np.eye(3)
    t = np.array([[0.0, 0.3, 0.0], [0.3, 0.0, 0.0], [0.0, 0.0, 0.0]])
    vals, vecs = np.linalg.eigh(t)
    c = (vecs * np.exp(vals)) @ vecs.T  # expm(t)
    ts = TangentSpace(shrinkage=0.0).fit(mean[None])
    out = ts.transform(c[None])[0]
    # Order (0,0), (0,1), (1,1), (0,2), (1,2), (2,2): that of nilearn's sym_matrix_to_vec.
    np.testing.assert_allclose(out, [0.0, 0.3 * np.sqrt(2), 0.0, 0.0, 0.0, 0.0], atol=1e-12)
    assert np.linalg.norm(out) == pytest.approx(np.linalg.norm(t))


def test_congruence_invariance(rng):
    """C -> A C A^T on all subjects: mean_ -> A mean_ A^T, and the tangent vectors are rotated, so all
    inner products (and distances) between subjects are unchanged; a permutation permutes the entries."""
    train, test = covariances(rng, 5, 6, 30), covariances(rng, 3, 6, 30)
    a = rng.standard_normal((6, 6)) + 3 * np.eye(6)
    ts = TangentSpace(shrinkage=0.0).fit(train)
    ts_a = TangentSpace(shrinkage=0.0).fit(a @ train @ a.T)
    np.testing.assert_allclose(ts_a.mean_, a @ ts.mean_ @ a.T, rtol=1e-8, atol=1e-8)
    x, x_a = ts.transform(np.concatenate([train, test])), ts_a.transform(a @ np.concatenate([train, test]) @ a.T)
    np.testing.assert_allclose(x_a @ x_a.T, x @ x.T, atol=1e-8)
    assert not np.allclose(x_a, x)  # a rotation, not the identity: the Gram matrix is the invariant

    perm = np.array([3, 0, 5, 1, 4, 2])
    p = np.eye(6)[perm]
    ts_p = TangentSpace(shrinkage=0.0).fit(p @ train @ p.T)
    y, y_p = ts.transform(test), ts_p.transform(p @ test @ p.T)
    for yi, ypi in zip(y, y_p):
        np.testing.assert_allclose(vec_to_matrix(ypi, 6), p @ vec_to_matrix(yi, 6) @ p.T, atol=1e-8)


def test_rank_deficient_correlation_gives_finite_output(rng):
    x = rng.standard_normal((4, 5, 8))  # 4 subjects, 5 time points, 8 regions: rank <= 4
    corr = np.stack([np.corrcoef(xi.T) for xi in x])
    assert np.linalg.matrix_rank(corr[0]) <= 4
    spd = make_spd(corr)
    # Shrinkage 0.1 toward mu I (mu = 1): the smallest eigenvalue is exactly 0.1.
    np.testing.assert_allclose(np.linalg.eigvalsh(spd)[:, 0], 0.1, atol=1e-10)
    for shrinkage in (0.1, 0.0):  # 0: the eigenvalue clip alone keeps it PD
        out = TangentSpace(shrinkage=shrinkage).fit(corr[:3]).transform(corr)
        assert out.shape == (4, 36) and np.all(np.isfinite(out))
    assert np.linalg.eigvalsh(make_spd(corr, shrinkage=0.0))[:, 0].min() >= 1e-6 * (1 - 1e-9)


@pytest.mark.parametrize("dead_diagonal", [0.0, 1.0])
def test_zero_region_is_positive_definite_and_neutral(rng, dead_diagonal):
    x = rng.standard_normal((5, 30, 7))
    corr = np.stack([np.corrcoef(xi.T) for xi in x])
    corr[:, 2, :] = corr[:, :, 2] = 0.0
    corr[:, 2, 2] = dead_diagonal
    spd = make_spd(corr)
    assert np.all(np.linalg.eigvalsh(spd) > 0)
    np.testing.assert_allclose(spd[:, 2, 2], 1.0)  # (1 - s) 1 + s mu, mu = 1
    ts = TangentSpace().fit(corr[:4])
    assert ts.mean_[2, 2] == pytest.approx(1.0)
    tangent = np.stack([vec_to_matrix(v, 7) for v in ts.transform(corr)])
    assert np.all(np.isfinite(tangent))
    np.testing.assert_allclose(tangent[:, 2, :], 0.0, atol=1e-10)  # the dead region contributes nothing


def test_fit_on_train_only(rng):
    train, test = covariances(rng, 5, 6, 30), covariances(rng, 2, 6, 30)
    ts = TangentSpace().fit(train)
    mean, whitening = ts.mean_.copy(), ts.whitening_.copy()
    out_test = ts.transform(test)
    np.testing.assert_array_equal(ts.mean_, mean)
    np.testing.assert_array_equal(ts.whitening_, whitening)
    # Each subject is transformed on its own: stacking with other subjects changes nothing.
    np.testing.assert_allclose(ts.transform(np.concatenate([test, train]))[:2], out_test, atol=1e-12)
    # fit_transform = fit then transform; and a different training set gives a different mean.
    np.testing.assert_allclose(clone(ts).fit_transform(train), ts.transform(train), atol=1e-12)
    assert not np.allclose(TangentSpace().fit(test).mean_, mean)


def test_fit_with_one_matrix_gives_that_matrix(rng):
    c = covariances(rng, 1, 5, 20)
    np.testing.assert_allclose(TangentSpace(shrinkage=0.0).fit(c).mean_, c[0], atol=1e-12)
    ts = TangentSpace(shrinkage=0.2).fit(c)
    np.testing.assert_allclose(ts.mean_, make_spd(c, shrinkage=0.2)[0], atol=1e-12)
    np.testing.assert_allclose(ts.transform(c), 0.0, atol=1e-10)


def test_inverse_transform_round_trip(rng):
    train, test = covariances(rng, 4, 5, 25), covariances(rng, 3, 5, 25)
    ts = TangentSpace(shrinkage=0.0).fit(train)
    np.testing.assert_allclose(ts.inverse_transform(ts.transform(test)), test, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ts.inverse_transform(np.zeros((1, 15)))[0], ts.mean_, atol=1e-12)


def test_matches_nilearn_tangent(rng):
    nilearn_connectome = pytest.importorskip("nilearn.connectome")
    from sklearn.covariance import EmpiricalCovariance

    series = [rng.standard_normal((40, 6)) * rng.uniform(0.5, 2.0, 6) for _ in range(5)]
    measure = nilearn_connectome.ConnectivityMeasure(cov_estimator=EmpiricalCovariance(), kind="tangent",
                                                     vectorize=True, discard_diagonal=False)
    expected = measure.fit_transform(series)
    covs = np.stack([EmpiricalCovariance().fit(s).covariance_ for s in series])
    ts = TangentSpace(shrinkage=0.0).fit(covs)
    np.testing.assert_allclose(ts.mean_, measure.mean_, rtol=1e-5, atol=1e-7)
    # nilearn divides the diagonal by sqrt(2) instead of multiplying the off-diagonal by sqrt(2).
    np.testing.assert_allclose(ts.transform(covs), np.sqrt(2) * expected, atol=1e-5)


def test_correlation_from_fisher_z():
    r = np.array([[1.0, 0.5, -0.2], [0.5, 1.0, 0.0], [-0.2, 0.0, 1.0]])
    z = np.arctanh(np.where(np.eye(3, dtype=bool), 0.0, r))
    z[np.diag_indices(3)] = np.inf
    np.testing.assert_allclose(correlation_from_fisher_z(z), r, atol=1e-15)
    np.testing.assert_allclose(correlation_from_fisher_z(np.stack([z, z])), np.stack([r, r]), atol=1e-15)
    with pytest.raises(ValueError, match=r"'z' must be a square matrix"):
        correlation_from_fisher_z(np.zeros((3, 4)))


def test_errors(rng):
    good = covariances(rng, 3, 4, 20)
    with pytest.raises(ValueError, match=r"3D array of shape \(s, n, n\).*shape \(4, 4\)"):
        TangentSpace().fit(good[0])
    with pytest.raises(ValueError, match=r"square matrices.*shape \(3, 4, 5\)"):
        TangentSpace().fit(np.zeros((3, 4, 5)))
    bad = good.copy()
    bad[1, 0, 2] = np.nan
    with pytest.raises(ValueError, match=r"must be finite; the matrices of subjects \[1\]"):
        TangentSpace().fit(bad)
    with pytest.raises(ConfigError, match=r"'shrinkage' must be a number in \[0, 1\); 1.5 was provided"):
        TangentSpace(shrinkage=1.5).fit(good)
    with pytest.raises(ConfigError, match=r"'max_iter' must be a positive integer; 0 was provided"):
        TangentSpace(max_iter=0).fit(good)
    with pytest.raises(NotFittedError):
        TangentSpace().transform(good)
    ts = TangentSpace().fit(good)
    with pytest.raises(ValueError, match=r"must have 4 regions, as the matrices given to fit; 5 were provided"):
        ts.transform(covariances(rng, 2, 5, 20))
    with pytest.raises(ValueError, match=r"must be finite"):
        ts.transform(bad)


def test_non_convergence_warns(rng):
    from sklearn.exceptions import ConvergenceWarning

    train = covariances(rng, 4, 5, 8)
    with pytest.warns(ConvergenceWarning, match="did not converge in 1 iterations"):
        TangentSpace(max_iter=1, tol=1e-14).fit(train)
