"""Functional connectivity: confound strategies, scrubbing, parcellated time series (nilearn's
labels masker) and connectivity matrices.

Confound strategies (XCP-D's names; fMRIPrep's column names):

=========  ==============================================================================
none       no regression (detrending, filtering and standardisation still apply)
6P         the six motion parameters
24P        6P, their derivatives, and the squares of both
36P        24P plus white matter and CSF signals with the same four expansions
aCompCor   6P and derivatives plus the first ``n_compcor`` aCompCor components
=========  ==============================================================================

``global_signal: true`` adds the global signal with the strategy's expansion (4 terms for
24P/36P, so 36P with it is XCP-D's 36 regressors; 2 for aCompCor; 1 for 6P).
Scrubbing: volumes with framewise displacement above ``fd_threshold`` are censored; nilearn
interpolates them (cubic spline) before the band-pass filter and drops them after it
(Power 2014). A run left with less than ``min_clean_seconds`` of clean data, or with fewer
kept volumes than regressors, is excluded with the reason logged.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import nibabel as nib
import numpy as np
import pandas as pd

from connex.errors import BIDSError, check_choice
from connex.functional.confounds import MOTION_COLUMNS
from connex.registry import CONFOUND_STRATEGIES, COVARIANCE_ESTIMATORS, FC_MEASURES

#: Shorter clean runs give an unstable connectome (Birn 2013: reliability keeps rising up to 9-13 min).
STABLE_CLEAN_SECONDS = 300.0


@dataclass(frozen=True)
class CleaningParams:
    """Every setting of confound regression, scrubbing and filtering, stated explicitly.

    ``standardize`` is nilearn's (``zscore_sample``, ``psc`` or ``None``); ``low_pass``/``high_pass``
    in Hz (``None`` to skip); ``fd_threshold`` in mm (``None``: no scrubbing).
    """

    strategy: str = "aCompCor"
    global_signal: bool = False
    n_compcor: int = 10
    fd_threshold: float | None = 0.5
    min_clean_seconds: float = 120.0
    detrend: bool = True
    standardize: str | None = "zscore_sample"
    standardize_confounds: bool = True
    low_pass: float | None = None
    high_pass: float | None = None
    filter: str = "butterworth"

    def __post_init__(self):
        check_choice("strategy", self.strategy, CONFOUND_STRATEGIES)

    def as_dict(self) -> dict:
        return asdict(self)


def _expanded(columns: list[str], *, derivatives: bool, squares: bool) -> list[str]:
    names = list(columns)
    if derivatives:
        names += [f"{c}_derivative1" for c in columns]
    if squares:
        names += [f"{c}_power2" for c in columns]
        if derivatives:
            names += [f"{c}_derivative1_power2" for c in columns]
    return names


def confound_columns(strategy: str, *, global_signal: bool = False, n_compcor: int = 10) -> list[str]:
    """The confound column names a strategy regresses out (module docstring)."""
    check_choice("strategy", strategy, CONFOUND_STRATEGIES)
    expansion = {"none": (False, False), "6P": (False, False), "24P": (True, True), "36P": (True, True),
                 "aCompCor": (True, False)}[strategy]
    derivatives, squares = expansion
    columns = [] if strategy == "none" else _expanded(MOTION_COLUMNS, derivatives=derivatives, squares=squares)
    if strategy == "36P":
        columns += _expanded(["white_matter", "csf"], derivatives=True, squares=True)
    if strategy == "aCompCor":
        columns += [f"a_comp_cor_{k:02d}" for k in range(n_compcor)]
    if global_signal:
        columns += _expanded(["global_signal"], derivatives=derivatives, squares=squares)
    return columns


def select_confounds(table: pd.DataFrame, params: CleaningParams, source: str) -> pd.DataFrame | None:
    """The strategy's columns of a confounds table (ours or fMRIPrep's), first-row n/a set to 0.

    Raises
    ------
    BIDSError
        Naming ``source`` when a column the strategy needs is missing.
    """
    columns = confound_columns(params.strategy, global_signal=params.global_signal, n_compcor=params.n_compcor)
    if not columns:
        return None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise BIDSError(f"{source}: confound strategy {params.strategy!r}"
                        f"{' with global signal' if params.global_signal else ''} needs column(s) "
                        f"{missing[:8]}{' ...' if len(missing) > 8 else ''}, which the confounds file lacks.")
    selected = table[columns].astype(float)
    # Derivatives are undefined for the first volume (n/a in fMRIPrep's files); 0 as nilearn does.
    return selected.fillna(0.0)


@dataclass
class Censoring:
    """Which volumes are kept, and whether the run is usable."""

    keep: np.ndarray  # (T,) bool
    clean_seconds: float
    included: bool
    reason: str | None

    @property
    def n_kept(self) -> int:
        return int(self.keep.sum())


def censor(framewise_displacement: np.ndarray, repetition_time: float, params: CleaningParams, *,
           n_regressors: int) -> Censoring:
    """Scrub volumes above the FD threshold and decide whether the run has enough clean data.

    Parameters
    ----------
    framewise_displacement : ndarray (T,)
        mm; NaN (the first volume) counts as 0.
    """
    fd = np.nan_to_num(np.asarray(framewise_displacement, dtype=float), nan=0.0)
    keep = np.ones(len(fd), bool) if params.fd_threshold is None else fd <= params.fd_threshold
    clean_seconds = float(keep.sum() * repetition_time)
    reason = None
    if clean_seconds < params.min_clean_seconds:
        reason = (f"{clean_seconds:g} s of clean data ({int(keep.sum())} of {len(fd)} volumes with FD <= "
                  f"{params.fd_threshold} mm) is under the minimum of {params.min_clean_seconds:g} s")
    elif keep.sum() <= n_regressors + 2:
        reason = (f"{int(keep.sum())} kept volumes for {n_regressors} confound regressors leave no degrees of "
                  "freedom; choose a smaller strategy")
    return Censoring(keep=keep, clean_seconds=clean_seconds, included=reason is None, reason=reason)


def parcellate(bold: nib.Nifti1Image, labels: np.ndarray, brain: np.ndarray, n_regions: int,
               confounds: pd.DataFrame | None, keep: np.ndarray, params: CleaningParams, repetition_time: float
               ) -> tuple[np.ndarray, list[int]]:
    """Cleaned mean time series of every atlas region (nilearn's ``NiftiLabelsMasker``).

    Parameters
    ----------
    bold : Nifti1Image (X, Y, Z, T)
    labels : ndarray (X, Y, Z) of int
        Atlas positions 1..``n_regions`` (atlas order) on the BOLD grid; 0 is background.
    brain : ndarray (X, Y, Z) of bool
    confounds : DataFrame (T, k) or None
    keep : ndarray (T,) of bool
        Volumes kept after scrubbing.

    Returns
    -------
    timeseries : ndarray (T_kept, n_regions)
        Zero columns for regions without signal.
    without_signal : list of int
        1-based positions of the regions with no voxel in the brain on the BOLD grid or no
        variance in the data.
    """
    from nilearn.maskers import NiftiLabelsMasker

    labels = np.where(brain, labels, 0).astype(np.int32)
    data = np.asarray(bold.dataobj, dtype=np.float32)
    present = np.zeros(n_regions + 1, bool)
    present[np.unique(labels)] = True
    present[0] = False
    varying = data.std(axis=3) > 0
    for position in np.flatnonzero(present):
        if not varying[labels == position].any():  # a region of constant voxels has no signal
            present[position] = False
            labels[labels == position] = 0
    without_signal = [int(p) for p in range(1, n_regions + 1) if not present[p]]
    timeseries = np.zeros((int(keep.sum()), n_regions), dtype=np.float64)
    if not present.any():
        return timeseries, without_signal
    masker = NiftiLabelsMasker(labels_img=nib.Nifti1Image(labels, bold.affine), background_label=0,
                               standardize=params.standardize, standardize_confounds=params.standardize_confounds,
                               detrend=params.detrend, low_pass=params.low_pass, high_pass=params.high_pass,
                               t_r=repetition_time, resampling_target=None, strategy="mean",
                               clean_args={"filter": params.filter})
    sample_mask = np.flatnonzero(keep) if not keep.all() else None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Nn]on-finite.*")
        signals = masker.fit_transform(bold, confounds=None if confounds is None else confounds.to_numpy(),
                                       sample_mask=sample_mask)
    kept_positions = np.flatnonzero(present)  # nilearn orders columns by label value
    if signals.shape != (int(keep.sum()), len(kept_positions)):
        raise RuntimeError(f"nilearn returned time series of shape {signals.shape}; expected "
                           f"({int(keep.sum())}, {len(kept_positions)}).")
    timeseries[:, kept_positions - 1] = signals
    return timeseries, without_signal


def connectivity(timeseries: np.ndarray, without_signal: list[int], measure: str, *, fisher_z: bool = False,
                 estimator: str = "ledoitwolf") -> np.ndarray:
    """A connectivity matrix (n, n) of the regions with signal; rows and columns of the regions
    without signal are 0, and so is the diagonal of correlations.

    ``correlation`` is Pearson's (Fisher z with ``fisher_z``); ``partialcorrelation`` and
    ``covariance`` use ``estimator`` (``ledoitwolf`` shrinkage, or ``empirical``).
    """
    from nilearn.connectome import ConnectivityMeasure
    from sklearn.covariance import EmpiricalCovariance, LedoitWolf

    check_choice("measure", measure, FC_MEASURES)
    check_choice("estimator", estimator, COVARIANCE_ESTIMATORS)
    n = timeseries.shape[1]
    present = np.setdiff1d(np.arange(n), np.asarray(without_signal, dtype=int) - 1)
    matrix = np.zeros((n, n))
    if len(present) < 2:
        return matrix
    if measure == "correlation":
        cov_estimator = EmpiricalCovariance(store_precision=False)
    else:
        cov_estimator = LedoitWolf(store_precision=False) if estimator == "ledoitwolf" else EmpiricalCovariance()
    kind = {"partialcorrelation": "partial correlation"}.get(measure, measure)
    values = ConnectivityMeasure(cov_estimator=cov_estimator, kind=kind, standardize=False).fit_transform(
        [timeseries[:, present]])[0]
    if measure != "covariance":
        np.fill_diagonal(values, 0.0)
    if measure == "correlation" and fisher_z:
        values = np.arctanh(np.clip(values, -0.999999, 0.999999))
    matrix[np.ix_(present, present)] = (values + values.T) / 2
    return matrix
