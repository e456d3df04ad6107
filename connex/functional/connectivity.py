"""Functional connectivity: confound strategies, scrubbing, parcellated time series (nilearn's
labels masker) and connectivity matrices.

Confound strategies (XCP-D's and Ciric et al. 2017's names), each a set of parameters of nilearn's
:func:`nilearn.interfaces.fmriprep.load_confounds`, which selects the columns of an fMRIPrep-style
confounds TSV (fMRIPrep's own, or the one :func:`connex.functional.confounds.compute_confounds`
writes) and reads the CompCor masks from its JSON sidecar:

=========  ===========================================================  =============================
none       no regression (detrending, filtering, standardisation stay)  ``strategy=()``
6P         the six motion parameters                                    ``motion="basic"``
8P         6P plus the mean white matter and CSF signals (Parkes et     ``motion="basic"``,
           al. 2018's "6P+2P"; with the global signal Ciric's 9P)       ``wm_csf="basic"``
24P        6P, their derivatives, and the squares of both               ``motion="full"``
36P        24P plus white matter and CSF signals, same four expansions  ``motion="full"``,
                                                                        ``wm_csf="full"``
aCompCor   6P and derivatives, the first ``n_compcor`` aCompCor         ``motion="derivatives"``,
           components of the combined WM+CSF mask, and the              ``compcor="anat_combined"``,
           ``cosine_XX`` high-pass regressors (128 s) they were         ``n_compcor``, ``high_pass``
           computed after
=========  ===========================================================  =============================

``global_signal: true`` adds the global signal with the strategy's expansion (``full``, 4 terms,
for 24P/36P, so 36P with it is XCP-D's 36 regressors; ``derivatives``, 2, for aCompCor; ``basic``,
1, for 6P, 8P and none).
``n_compcor`` follows nilearn: with ``anat_combined``, the first ``n_compcor`` components whose
JSON ``Mask`` is ``combined`` (in file order, which is decreasing variance), or all of them where
the file has fewer (fMRIPrep keeps those explaining 50% of the variance; ConneX's own file has
``fc.n_compcor`` of them). CSF-only and WM-only components (``Mask`` ``CSF``/``WM``, under the
``a_comp_cor_`` prefix before fMRIPrep 21, ``c_comp_cor_``/``w_comp_cor_`` after) are never taken.

Scrubbing is ConneX's own, not nilearn's (``scrub`` is never in the nilearn strategy, so it flags
no motion outliers, and the sample mask nilearn returns is ignored): volumes with framewise
displacement above ``fd_threshold`` are censored; nilearn's masker interpolates them (cubic spline)
before the band-pass filter and drops them after it (Power 2014). A run left with less than
``min_clean_seconds`` of clean data, or with fewer kept volumes than regressors, is excluded with
the reason logged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from connex.errors import BIDSError, check_choice
from connex.inputs.io import write_tsv
from connex.inputs.paths import sidecar_path
from connex.registry import CONFOUND_STRATEGIES, COVARIANCE_ESTIMATORS, FC_MEASURES

log = logging.getLogger(__name__)

#: Shorter clean runs give an unstable connectome (Birn 2013: reliability keeps rising up to 9-13 min).
STABLE_CLEAN_SECONDS = 300.0
#: How nilearn's ``load_confounds`` sees every confounds file: the fMRIPrep names of a BOLD run and
#: its confounds in one folder (the BOLD image itself is never opened, only its name is parsed).
NILEARN_STEM = "sub-connex_task-confounds"


@dataclass(frozen=True)
class CleaningParams:
    """Every setting of confound regression, scrubbing and filtering, stated explicitly.

    ``standardize`` is nilearn's (``zscore_sample``, ``psc`` or ``None``); ``low_pass``/``high_pass``
    in Hz (``None`` to skip); ``fd_threshold`` in mm (``None``: no scrubbing).
    """

    strategy: str = "8P"
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


#: The motion expansion of each strategy (nilearn's names), which the global signal shares.
MOTION_MODELS = {"none": None, "6P": "basic", "8P": "basic", "24P": "full", "36P": "full", "aCompCor": "derivatives"}
#: The white-matter and CSF signals' expansion of the strategies that take them.
WM_CSF_MODELS = {"8P": "basic", "36P": "full"}


def confound_arguments(strategy: str, *, global_signal: bool = False, n_compcor: int = 10) -> dict:
    """The keyword arguments of nilearn's ``load_confounds`` for a strategy (module docstring).

    ``scrub`` is never in the nilearn ``strategy``: nilearn then flags no motion outlier, and
    ConneX censors by its own FD threshold (:func:`censor`).
    """
    check_choice("strategy", strategy, CONFOUND_STRATEGIES)
    motion = MOTION_MODELS[strategy]
    components: list[str] = []
    arguments: dict = {}
    if motion is not None:
        components.append("motion")
        arguments["motion"] = motion
    if strategy in WM_CSF_MODELS:
        components.append("wm_csf")
        arguments["wm_csf"] = WM_CSF_MODELS[strategy]
    if strategy == "aCompCor":
        components += ["compcor", "high_pass"]  # nilearn requires the cosines with fMRIPrep's CompCor
        arguments.update(compcor="anat_combined", n_compcor=int(n_compcor))
    if global_signal:
        components.append("global_signal")
        arguments["global_signal"] = motion or "basic"
    return {"strategy": tuple(components), **arguments}


@contextlib.contextmanager
def _nilearn_folder() -> Iterator[Path]:
    """A temporary folder whose path has no ``tsv`` in it: nilearn finds the JSON sidecar by
    replacing every ``tsv`` in the TSV's path with ``json``."""
    for _ in range(20):
        with tempfile.TemporaryDirectory(prefix="connex-confounds-") as folder:
            if "tsv" not in folder:
                yield Path(folder)
                return
    raise RuntimeError(f"Every temporary folder under {tempfile.gettempdir()} has 'tsv' in its path; set TMPDIR.")


def _strategy_label(params: CleaningParams) -> str:
    return f"confound strategy {params.strategy!r}{' with global signal' if params.global_signal else ''}"


def _missing_hint(message: str, source: str) -> str:
    if "json" in message:
        return f" aCompCor needs the JSON sidecar {sidecar_path(source).name}, with each component's Mask."
    if "compcor" in message:
        return (" No aCompCor component has Mask 'combined' in the JSON sidecar (a ConneX file from before "
                "this version, with 'combined (eroded white matter + CSF)': rerun preprocess_bold).")
    return ""


def _nilearn_confounds(folder: Path, params: CleaningParams, source: str) -> pd.DataFrame:
    """nilearn's selection from the confounds TSV (and JSON) laid out in ``folder`` under
    :data:`NILEARN_STEM`; errors are re-raised naming ``source``."""
    from nilearn.interfaces.fmriprep import load_confounds

    arguments = confound_arguments(params.strategy, global_signal=params.global_signal, n_compcor=params.n_compcor)
    bold = folder / f"{NILEARN_STEM}_desc-preproc_bold.nii.gz"
    try:
        confounds, sample_mask = load_confounds(str(bold), demean=False, **arguments)
    except (ValueError, KeyError) as error:
        raise BIDSError(f"{source}: {_strategy_label(params)} needs confounds nilearn did not find in this file "
                        f"({error}).{_missing_hint(str(error), source)}") from error
    if sample_mask is not None:
        log.warning("%s: %d volume(s) flagged non_steady_state_outlier; nilearn's sample mask is ignored (ConneX's "
                    "FD censoring decides which volumes are kept).", source, len(confounds) - len(sample_mask))
    return confounds.astype(float)


def load_strategy_confounds(confounds: str | Path, params: CleaningParams) -> pd.DataFrame | None:
    """The strategy's regressors from a confounds TSV (ours or fMRIPrep's) and its JSON sidecar,
    selected by nilearn (module docstring); ``None`` for no regressor.

    The files are linked into a temporary folder under fMRIPrep's names (:data:`NILEARN_STEM`),
    so nilearn reads exactly this TSV, whatever the BOLD run beside it is called. Values are the
    file's, not demeaned (``demean=False``: nilearn would take the mean over its sample mask, which
    ConneX ignores; the masker centres or standardises the confounds), except first-row n/a
    (derivatives), which nilearn sets to the second row's value.

    Raises
    ------
    BIDSError
        Naming the file when a confound the strategy needs is missing (or, for aCompCor, the JSON).
    """
    if not confound_arguments(params.strategy, global_signal=params.global_signal)["strategy"]:
        return None
    confounds = Path(confounds)
    with _nilearn_folder() as folder:
        os.symlink(confounds.resolve(), folder / f"{NILEARN_STEM}_desc-confounds_timeseries.tsv")
        if sidecar_path(confounds).exists():
            os.symlink(sidecar_path(confounds).resolve(), folder / f"{NILEARN_STEM}_desc-confounds_timeseries.json")
        return _nilearn_confounds(folder, params, str(confounds))


def select_confounds(table: pd.DataFrame, params: CleaningParams, source: str, *,
                     metadata: dict | None = None) -> pd.DataFrame | None:
    """:func:`load_strategy_confounds` for a confounds table in memory and its JSON ``metadata``
    (needed by aCompCor), as :func:`connex.functional.confounds.compute_confounds` returns them."""
    if not confound_arguments(params.strategy, global_signal=params.global_signal)["strategy"]:
        return None
    with _nilearn_folder() as folder:
        write_tsv(table, folder / f"{NILEARN_STEM}_desc-confounds_timeseries.tsv")
        if metadata is not None:
            (folder / f"{NILEARN_STEM}_desc-confounds_timeseries.json").write_text(json.dumps(metadata))
        return _nilearn_confounds(folder, params, source)


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
