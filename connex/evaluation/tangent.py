"""Tangent-space embedding of functional connectivity matrices: the strongest FC baseline.

Each subject's FC matrix is mapped to the tangent space of the manifold of symmetric positive
definite (SPD) matrices at the geometric (Riemannian) mean of the *training* subjects, then
vectorised (Varoquaux et al. 2010, MICCAI; tangent space + L2 logistic regression was the best
of 240 pipelines in Dadi et al. 2019, NeuroImage 192:115).

Shape letters: ``s`` subjects, ``n`` regions, ``f = n (n + 1) / 2`` tangent features.

Only symmetric matrices are ever decomposed, so every matrix function (square root, inverse
square root, logarithm, exponential) goes through :func:`numpy.linalg.eigh`, never through
:func:`scipy.linalg.logm` (slow and complex-valued on round-off).
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from connex.errors import ConfigError

__all__ = ["TangentSpace", "correlation_from_fisher_z", "make_spd"]


def _check_matrices(matrices, name: str = "matrices") -> np.ndarray:
    """Return ``matrices`` as float64 ``(s, n, n)``, or raise a ValueError saying what was wrong."""
    array = np.asarray(matrices)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"{name!r} must be a numeric array of shape (s, n, n); dtype {array.dtype} was provided.")
    if array.ndim != 3:
        raise ValueError(f"{name!r} must be a 3D array of shape (s, n, n) (one matrix per subject); "
                         f"an array of shape {array.shape} was provided.")
    if array.shape[1] != array.shape[2]:
        raise ValueError(f"{name!r} must hold square matrices of shape (s, n, n); "
                         f"an array of shape {array.shape} was provided.")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name!r} must hold at least one non-empty matrix; shape {array.shape} was provided.")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        bad = sorted({int(i) for i in np.nonzero(~np.isfinite(array))[0]})
        raise ValueError(f"{name!r} must be finite; the matrices of subjects {bad} (0-based) contain NaN or inf.")
    return array


def _eig_function(matrices: np.ndarray, function) -> np.ndarray:
    """``V f(w) V^T`` of symmetric ``(..., n, n)`` matrices, with ``w, V = eigh``."""
    vals, vecs = np.linalg.eigh(matrices)
    return (vecs * function(vals)[..., None, :]) @ np.swapaxes(vecs, -1, -2)


def _logm_spd(matrices: np.ndarray) -> np.ndarray:
    """Matrix logarithm of SPD ``(..., n, n)`` matrices; raise if one is not positive definite."""
    vals, vecs = np.linalg.eigh(matrices)
    if np.any(vals <= 0):
        raise ValueError("The matrix logarithm needs positive definite matrices; got an eigenvalue "
                         f"{vals.min():.3g} <= 0 (increase 'shrinkage' or 'eps').")
    return (vecs * np.log(vals)[..., None, :]) @ np.swapaxes(vecs, -1, -2)


def _symmetrise(matrices: np.ndarray) -> np.ndarray:
    return (matrices + np.swapaxes(matrices, -1, -2)) / 2.0


def _sym_to_vec(matrices: np.ndarray) -> np.ndarray:
    """Upper triangles including the diagonal, ``(s, n, n) -> (s, n (n + 1) / 2)``, off-diagonal
    entries times sqrt(2) so that the Euclidean norm of a vector is the Frobenius norm of its matrix.
    Same entry order as nilearn's ``sym_matrix_to_vec(discard_diagonal=False)``, which instead divides
    the diagonal by sqrt(2): its vectors are these divided by sqrt(2), the same geometry up to scale."""
    n = matrices.shape[-1]
    rows, cols = np.tril_indices(n)  # row-major lower triangle = nilearn's order; matrices are symmetric
    weights = np.where(rows == cols, 1.0, np.sqrt(2.0))
    return matrices[..., rows, cols] * weights


def _vec_to_sym(vectors: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`_sym_to_vec`: ``(s, n (n + 1) / 2) -> (s, n, n)``."""
    rows, cols = np.tril_indices(n)
    weights = np.where(rows == cols, 1.0, np.sqrt(2.0))
    out = np.zeros(vectors.shape[:-1] + (n, n))
    out[..., rows, cols] = vectors / weights
    out[..., cols, rows] = vectors / weights
    return out


def _check_shrinkage_eps(shrinkage, eps) -> None:
    if isinstance(shrinkage, bool) or not isinstance(shrinkage, numbers.Real) or not 0.0 <= shrinkage < 1.0:
        raise ConfigError(f"'shrinkage' must be a number in [0, 1); {shrinkage!r} was provided.")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0.0 < eps < 1.0:
        raise ConfigError(f"'eps' must be a number in (0, 1); {eps!r} was provided.")


def make_spd(matrices, *, shrinkage: float = 0.1, eps: float = 1e-6) -> np.ndarray:
    """Make each FC matrix symmetric positive definite, ready for the tangent space.

    Per matrix ``C``: (1) symmetrise, ``(C + C^T) / 2``; (2) give every *dead* region (all
    off-diagonal entries exactly zero and a diagonal entry <= 0, e.g. a region outside the field of
    view whose correlations were written as zeros) the mean diagonal of the live regions (1 for a
    correlation matrix), so that it stays positive definite and uncoupled; (3) shrink toward the
    identity scaled by the mean diagonal ``mu``: ``(1 - shrinkage) C + shrinkage mu I``; (4) if an
    eigenvalue is still <= ``eps mu`` (only possible with ``shrinkage`` 0 or a non-PSD input such as
    a partial-correlation or Fisher-z-derived matrix), clip the eigenvalues at ``eps mu``.

    Why ``shrinkage=0.1`` by default: a correlation matrix of fewer time points than regions is
    rank deficient, and after shrinkage its smallest eigenvalue is ``shrinkage mu`` (0.1 for a
    correlation matrix), so its log stays bounded (log 0.1 = -2.3) instead of diverging; 0.1 is also
    the order of the Ledoit-Wolf shrinkage of typical resting-state covariances, which the
    tangent-space benchmarks (Dadi et al. 2019) used. The floor and clip are relative to ``mu`` so
    that covariances in any unit are treated alike.

    Parameters
    ----------
    matrices : array-like (s, n, n)
        Correlation (r, not Fisher z: see :func:`correlation_from_fisher_z`), partial correlation
        or covariance matrices, finite.
    shrinkage : float in [0, 1), keyword-only
        Weight of the scaled identity.
    eps : float in (0, 1), keyword-only
        Relative eigenvalue floor.

    Returns
    -------
    ndarray (s, n, n), float64
        Symmetric positive definite matrices.
    """
    _check_shrinkage_eps(shrinkage, eps)
    out = _symmetrise(_check_matrices(matrices))
    n = out.shape[-1]
    idx = np.arange(n)
    off_diagonal = ~np.eye(n, dtype=bool)
    for c in out:  # views: edited in place
        diagonal = c[idx, idx]
        dead = np.all((c == 0) | ~off_diagonal, axis=1) & (diagonal <= 0)
        if dead.any():
            live = diagonal[~dead]
            c[idx[dead], idx[dead]] = live.mean() if live.size and live.mean() > 0 else 1.0
    mu = np.einsum("sii->s", out) / n
    if np.any(mu <= 0):
        bad = [int(i) for i in np.nonzero(mu <= 0)[0]]
        raise ValueError(f"'matrices' must have a positive mean diagonal (correlations or covariances); "
                         f"subjects {bad} (0-based) do not.")
    out = (1.0 - shrinkage) * out + shrinkage * mu[:, None, None] * np.eye(n)
    floor = eps * mu
    vals = np.linalg.eigvalsh(out)
    for i in np.nonzero(vals[:, 0] <= floor)[0]:
        out[i] = _symmetrise(_eig_function(out[i], lambda w, f=floor[i]: np.maximum(w, f)))
    return out


def correlation_from_fisher_z(z) -> np.ndarray:
    """Correlation ``r = tanh(z)`` of Fisher-z FC matrices, with the diagonal set to 1.

    The diagonal of a Fisher-z matrix is arctanh(1) = inf, or 0 or NaN by convention, so it is
    overwritten rather than transformed.

    Parameters
    ----------
    z : array-like (n, n) or (s, n, n)
        Fisher z of correlations; off-diagonal entries finite.

    Returns
    -------
    ndarray, same shape as ``z``, float64
        Correlations in [-1, 1] with unit diagonal.
    """
    array = np.array(z, dtype=np.float64)
    if array.ndim not in (2, 3) or array.shape[-1] != array.shape[-2]:
        raise ValueError(f"'z' must be a square matrix (n, n) or matrices (s, n, n); "
                         f"an array of shape {array.shape} was provided.")
    n = array.shape[-1]
    off_diagonal = array[..., ~np.eye(n, dtype=bool)]
    if np.any(np.isnan(off_diagonal)):
        raise ValueError("'z' must have no NaN off the diagonal.")
    r = np.tanh(array)
    r[..., np.arange(n), np.arange(n)] = 1.0
    return r


def _geometric_mean(spd: np.ndarray, *, max_iter: int, tol: float) -> tuple[np.ndarray, int, float]:
    """Riemannian (Karcher) mean of SPD matrices ``(s, n, n) -> (n, n)`` by gradient descent.

    Start at the arithmetic mean ``G``; the Riemannian gradient is ``T = mean_i logm(G^-1/2 C_i
    G^-1/2)`` (in whitened coordinates), and a step moves to ``G^1/2 expm(step T) G^1/2``. A step that
    increases ``||T||_F`` is rejected and the step size halved. Stop when ``||T||_F < tol``: the
    whitened gradient is dimensionless, so the tolerance does not depend on the matrices' unit.

    Returns (mean, number of iterations, final gradient norm).
    """
    def gradient(mean):
        inv_sqrt = _eig_function(mean, lambda w: 1.0 / np.sqrt(w))
        return _logm_spd(_symmetrise(inv_sqrt @ spd @ inv_sqrt)).mean(axis=0)

    mean = spd.mean(axis=0)
    grad = gradient(mean)
    norm = np.linalg.norm(grad)
    step = 1.0
    n_iter = 0
    while norm >= tol and n_iter < max_iter:
        n_iter += 1
        sqrt = _eig_function(mean, np.sqrt)
        candidate = _symmetrise(sqrt @ _eig_function(step * grad, np.exp) @ sqrt)
        candidate_grad = gradient(candidate)
        candidate_norm = np.linalg.norm(candidate_grad)
        if candidate_norm <= norm:
            mean, grad, norm = candidate, candidate_grad, candidate_norm
        else:
            step /= 2.0
    if norm >= tol:
        warnings.warn(f"The geometric mean did not converge in {max_iter} iterations: gradient norm {norm:.3g} "
                      f">= tol {tol:.3g}. Increase 'max_iter'.", ConvergenceWarning, stacklevel=3)
    return mean, n_iter, float(norm)


class TangentSpace(TransformerMixin, BaseEstimator):
    """Tangent-space embedding of FC matrices at the geometric mean of the training subjects.

    ``fit`` (on the training subjects only) makes the matrices SPD (:func:`make_spd`) and computes
    their geometric (Riemannian) mean ``mean_`` and ``whitening_ = mean_^-1/2``; ``transform`` maps any
    subject's matrix ``C`` to ``logm(whitening_ @ make_spd(C) @ whitening_)`` and vectorises its upper
    triangle with the diagonal, off-diagonal entries times sqrt(2), so that Euclidean geometry on the
    vectors is the Riemannian geometry at the mean (nilearn's ``ConnectivityMeasure(kind="tangent",
    vectorize=True, discard_diagonal=False)`` gives these vectors divided by sqrt(2)). The embedding
    commutes with any congruence ``C -> A C A^T`` applied to all subjects when ``shrinkage=0`` (up to
    a rotation of the tangent space, which preserves all inner products and distances between
    subjects); shrinkage toward the identity breaks this on purpose, as regularisation.

    Parameters
    ----------
    shrinkage : float in [0, 1), default 0.1
        Shrinkage toward the scaled identity (see :func:`make_spd`).
    eps : float in (0, 1), default 1e-6
        Relative eigenvalue floor (see :func:`make_spd`).
    max_iter : int, default 100
        Most iterations of the geometric mean.
    tol : float, default 1e-7
        Stop when the Frobenius norm of the whitened Riemannian gradient is below ``tol``.

    Attributes
    ----------
    mean_ : ndarray (n, n)
        Geometric mean of the training matrices (after :func:`make_spd`).
    whitening_ : ndarray (n, n)
        ``mean_^-1/2``.
    n_regions_ : int
        ``n``.
    n_iter_ : int
        Iterations the geometric mean took.
    """

    def __init__(self, shrinkage: float = 0.1, eps: float = 1e-6, max_iter: int = 100, tol: float = 1e-7):
        self.shrinkage = shrinkage
        self.eps = eps
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, matrices, y=None) -> TangentSpace:
        """Geometric mean of the training subjects' matrices.

        Parameters
        ----------
        matrices : array-like (s, n, n)
            Training subjects' FC matrices (correlation r, partial correlation or covariance).
        y : ignored

        Returns
        -------
        self
        """
        _check_shrinkage_eps(self.shrinkage, self.eps)
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, numbers.Integral) or self.max_iter < 1:
            raise ConfigError(f"'max_iter' must be a positive integer; {self.max_iter!r} was provided.")
        if isinstance(self.tol, bool) or not isinstance(self.tol, numbers.Real) or not self.tol > 0:
            raise ConfigError(f"'tol' must be a positive number; {self.tol!r} was provided.")
        spd = make_spd(matrices, shrinkage=self.shrinkage, eps=self.eps)
        mean, self.n_iter_, _ = _geometric_mean(spd, max_iter=self.max_iter, tol=self.tol)
        self.mean_ = mean
        self.whitening_ = _symmetrise(_eig_function(mean, lambda w: 1.0 / np.sqrt(w)))
        self.n_regions_ = mean.shape[0]
        return self

    def _check_regions(self, n: int, name: str) -> None:
        if n != self.n_regions_:
            raise ValueError(f"{name!r} must have {self.n_regions_} regions, as the matrices given to fit; "
                             f"{n} were provided.")

    def transform(self, matrices) -> np.ndarray:
        """Tangent vectors of any subjects' matrices at the training mean.

        Parameters
        ----------
        matrices : array-like (s, n, n)
            FC matrices of the same kind and regions as in ``fit``.

        Returns
        -------
        ndarray (s, n (n + 1) / 2), float64
            Upper triangles (with the diagonal; off-diagonal entries times sqrt(2)) of
            ``logm(whitening_ @ C @ whitening_)``.
        """
        check_is_fitted(self, "mean_")
        array = _check_matrices(matrices)
        self._check_regions(array.shape[-1], "matrices")
        spd = make_spd(array, shrinkage=self.shrinkage, eps=self.eps)
        tangent = _logm_spd(_symmetrise(self.whitening_ @ spd @ self.whitening_))
        return _sym_to_vec(tangent)

    def inverse_transform(self, vectors) -> np.ndarray:
        """SPD matrices of tangent vectors: ``mean_^1/2 expm(T) mean_^1/2``, e.g. to read a linear model's
        coefficients (or a group difference) back as a matrix.

        Parameters
        ----------
        vectors : array-like (s, n (n + 1) / 2)

        Returns
        -------
        ndarray (s, n, n), float64
            The matrices after :func:`make_spd` whose tangent vectors these are.
        """
        check_is_fitted(self, "mean_")
        array = np.asarray(vectors, dtype=np.float64)
        n = self.n_regions_
        if array.ndim != 2 or array.shape[1] != n * (n + 1) // 2:
            raise ValueError(f"'vectors' must have shape (s, {n * (n + 1) // 2}) for {n} regions; "
                             f"an array of shape {array.shape} was provided.")
        sqrt = _eig_function(self.mean_, np.sqrt)
        return _symmetrise(sqrt @ _eig_function(_vec_to_sym(array, n), np.exp) @ sqrt)
