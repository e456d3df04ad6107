"""The cohort QC table: the numbers a reviewer checks for each participant, with outliers flagged.

Every number comes from a JSON sidecar the stages already write (registration metrics, region
reports, DWI and BOLD preprocessing metrics, tractography, scrubbing decision). A value is
flagged when it crosses a fixed limit (a mean FD above 0.5 mm) or lies more than
``robust_z`` robust standard deviations (1.4826 x MAD, or 1.2533 x the mean absolute deviation
where the MAD is 0) from the cohort median on its bad side; the robust rule needs at least
``min_subjects`` values, as one subject is no cohort.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from connex.inputs.paths import bids_path, sidecar_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QCMeasure:
    """One column of the table: where it is read, and which side of it is bad."""

    label: str
    unit: str
    bad: str  # "low", "high", "both" (robust rule) or "nonzero" (any value above 0 is flagged)
    limit: float | None = None  # fixed limit on the bad side (flagged whatever the cohort)

    @property
    def unit_suffix(self) -> str:
        """`` mm`` after a value (nothing for unitless measures)."""
        return f" {self.unit}" if self.unit else ""


MEASURES: dict[str, QCMeasure] = {
    "t1w_template_r": QCMeasure("T1w-template correlation", "", "low", 0.4),
    "brain_volume_ml": QCMeasure("brain mask", "ml", "both"),
    "atlas_regions_missing": QCMeasure("atlas regions missing in T1w", "", "nonzero"),
    "dwi_b0_t1w_r": QCMeasure("b=0-T1w correlation", "", "both"),
    "dwi_max_translation_mm": QCMeasure("DWI max translation", "mm", "high", 3.0),
    "dwi_median_fa": QCMeasure("median FA in mask", "", "both"),
    "streamlines": QCMeasure("streamlines kept", "", "low"),
    "streamlines_assigned_fraction": QCMeasure("streamlines joining two regions", "", "low"),
    "sc_regions_empty": QCMeasure("regions without DWI voxels", "", "nonzero"),
    "bold_t1w_r": QCMeasure("BOLD-T1w correlation", "", "low"),
    "mean_fd_mm": QCMeasure("mean FD", "mm", "high", 0.5),
    "volumes_kept_fraction": QCMeasure("BOLD volumes kept", "", "low", 0.5),
    "fc_regions_without_signal": QCMeasure("regions without BOLD signal", "", "nonzero"),
}


#: The stages of :func:`qc_sidecars` with one sidecar per BOLD run (``<stage><run key>``).
BOLD_RUN_STAGES = ("bold_preproc", "bold_censoring")


def qc_sidecars(derivatives: str | Path, subject: str, *, atlas: str, task: str, sc_weight: str = "count",
                fc_measure: str = "correlation", session: str | None = None,
                bold_runs: Sequence[str] = ("",)) -> dict[str, Path]:
    """The JSON files the QC table reads for one participant (label without ``sub-``) and
    session, by stage: BOLD preprocessing and scrubbing of each run of ``bold_runs`` (keys ``""``
    or ``"_run-<label>"``, :func:`connex.inputs.bids.bold_run_key`; stages ``bold_preproc<key>``
    and ``bold_censoring<key>``), the FC matrix of the visit."""
    def path(datatype, suffix, **entities):
        return bids_path(derivatives, subject=subject, session=session, datatype=datatype, suffix=suffix,
                         extension=".json", **entities)

    runs = {}
    for key in bold_runs:
        runs[f"bold_preproc{key}"] = path("func", "bold", task=task + key, space="bold", desc="preproc")
        runs[f"bold_censoring{key}"] = path("func", "outliers", task=task + key)
    return {
        "anat_registration": path("anat", "qc", desc="registration"),
        "anat_atlas": path("anat", "dseg", space="T1w", atlas=atlas),
        "dwi_preproc": path("dwi", "dwi", space="dwi", desc="preproc"),
        "dwi_tractography": path("dwi", "tractography", space="dwi"),
        "dwi_connectome": sidecar_path(bids_path(derivatives, subject=subject, session=session, datatype="dwi",
                                                 suffix="relmat", extension=".tsv", atlas=atlas, stat=sc_weight)),
        **runs,
        "bold_connectome": sidecar_path(bids_path(derivatives, subject=subject, session=session, datatype="func",
                                                  suffix="relmat", extension=".tsv", task=task, atlas=atlas,
                                                  stat=fc_measure)),
    }


def sidecars_written(subject: Hashable, *, anat: Collection, sc: Collection, fc: Collection,
                     fc_kept: Collection, fmriprep: bool) -> dict[str, bool]:
    """Whether this run writes each sidecar of :func:`qc_sidecars` for one participant (a label
    without ``sub-``, or a :class:`~connex.inputs.paths.Visit`), from the participants of each stage.

    Parameters
    ----------
    anat, sc : collection
        Participants with a usable T1w (the anatomy stage) and with usable DWI (the SC stage).
    fc, fc_kept : collection
        Participants whose BOLD run the FC stage scrubs, and those whose run it keeps (only they
        get a connectome).
    fmriprep : bool
        BOLD preprocessed by fMRIPrep: ConneX writes no preprocessing sidecar of its own.
    """
    return {"anat_registration": subject in anat, "anat_atlas": subject in anat,
            "dwi_preproc": subject in sc, "dwi_tractography": subject in sc, "dwi_connectome": subject in sc,
            "bold_preproc": subject in fc and not fmriprep, "bold_censoring": subject in fc,
            "bold_connectome": subject in fc_kept}


def written_sidecars(sidecars: dict[str, Path], written: dict[str, bool]) -> dict[str, Path]:
    """The sidecars of :func:`qc_sidecars` that :func:`sidecars_written` says this run makes
    (each BOLD run's as its stage's)."""
    def stage(name: str) -> str:
        return next((prefix for prefix in BOLD_RUN_STAGES if name.startswith(prefix)), name)

    return {name: path for name, path in sidecars.items() if written[stage(name)]}


def read_sidecars(sidecars: dict[str, Path]) -> dict[str, dict | None]:
    """Each stage's sidecar of one participant, parsed (None where the stage did not run)."""
    return {name: json.loads(Path(p).read_text()) if Path(p).is_file() else None for name, p in sidecars.items()}


def subject_qc_values(read: dict[str, dict | None]) -> dict[str, float]:
    """The table's values for one participant from :func:`read_sidecars` (NaN where a stage did
    not run for it)."""
    values = dict.fromkeys(MEASURES, np.nan)

    def take(stage, key, transform=float):
        if read.get(stage) is not None and read[stage].get(key) is not None:
            return transform(read[stage][key])
        return np.nan

    values["t1w_template_r"] = take("anat_registration", "template_correlation")
    values["brain_volume_ml"] = take("anat_registration", "brain_volume_ml")
    values["atlas_regions_missing"] = take("anat_atlas", "MissingRegions", len)
    values["dwi_b0_t1w_r"] = take("dwi_preproc", "b0_t1w_correlation")
    values["dwi_max_translation_mm"] = take("dwi_preproc", "max_translation_mm")
    values["dwi_median_fa"] = take("dwi_preproc", "median_fa_in_mask")
    values["streamlines"] = take("dwi_tractography", "streamlines_kept")
    values["streamlines_assigned_fraction"] = take("dwi_connectome", "fraction_assigned")
    values["sc_regions_empty"] = take("dwi_connectome", "RegionsWithoutVoxels", len)
    # Every BOLD run of the visit: the worst coregistration, FD averaged over all volumes, the
    # share of all volumes kept.
    bold_r = [r["bold_t1w_correlation"] for _, r in run_sidecars(read, "bold_preproc")
              if r.get("bold_t1w_correlation") is not None]
    values["bold_t1w_r"] = float(min(bold_r)) if bold_r else np.nan
    decisions = [r for _, r in run_sidecars(read, "bold_censoring") if r.get("VolumesTotal")]
    if decisions:
        total = sum(r["VolumesTotal"] for r in decisions)
        with_fd = [r for r in decisions if r.get("MeanFramewiseDisplacement") is not None]
        if with_fd:
            values["mean_fd_mm"] = (sum(r["MeanFramewiseDisplacement"] * r["VolumesTotal"] for r in with_fd)
                                    / sum(r["VolumesTotal"] for r in with_fd))
        values["volumes_kept_fraction"] = sum(r["VolumesKept"] for r in decisions) / total
    values["fc_regions_without_signal"] = take("bold_connectome", "RegionsWithoutSignal", len)
    return values


def run_sidecars(read: dict[str, dict | None], stage: str) -> list[tuple[str, dict]]:
    """(run key, sidecar) of each BOLD run of a visit that ``stage`` (one of BOLD_RUN_STAGES) wrote."""
    return [(name.removeprefix(stage), r) for name, r in read.items() if name.startswith(stage) and r is not None]


def excluded_run_flags(read: dict[str, dict | None]) -> list[str]:
    """A flag for each BOLD run of a visit left out by scrubbing, with its reason."""
    flags = []
    for key, decision in run_sidecars(read, "bold_censoring"):
        if not decision.get("Included", True):
            run = f"BOLD {key.removeprefix('_')} excluded" if key else "BOLD run excluded"
            flags.append(f"{run}: {decision.get('Reason', 'no reason given')}")
    return flags


ROBUST_Z = 3.0
MIN_SUBJECTS = 5


def rules_text() -> str:
    """The flagging rules in words (for the report), from :data:`MEASURES` and the defaults."""
    limits = [f"{m.label} {'<' if m.bad == 'low' else '>'} {format_value(m.limit)}{m.unit_suffix}"
              for m in MEASURES.values() if m.limit is not None]
    return (f"A value is flagged beyond a fixed limit ({', '.join(limits)}, any count of missing regions above 0) "
            f"or more than {ROBUST_Z:g} robust SD (1.4826 MAD) from the cohort median on its bad side "
            f"(with {MIN_SUBJECTS} participants or more).")


def cohort_qc_table(sidecars_by_participant: dict[str, dict[str, Path]], *, robust_z: float = ROBUST_Z,
                    min_subjects: int = MIN_SUBJECTS) -> pd.DataFrame:
    """One row per participant: each measure's value and a ``flags`` column saying what is off.

    Parameters
    ----------
    sidecars_by_participant : dict
        ``participant_id`` (``sub-XX``), or a visit label (``sub-XX_ses-YY``) in a dataset with
        sessions, to :func:`qc_sidecars` of that participant (visit). With sessions the table has
        one row per visit and a ``session`` column.
    robust_z : float
        Distance from the cohort median, in robust standard deviations, beyond which a value on
        its bad side is flagged.
    min_subjects : int
        Fewest values of a measure for the robust rule to apply.
    """
    read = {pid: read_sidecars(files) for pid, files in sidecars_by_participant.items()}
    table = pd.DataFrame.from_dict({pid: subject_qc_values(r) for pid, r in read.items()},
                                   orient="index", columns=list(MEASURES))
    table.index.name = "participant_id"
    flags = {pid: [] for pid in table.index}
    past_limit = {pid: set() for pid in table.index}  # measures already flagged by a fixed rule
    for pid, r in read.items():
        flags[pid].extend(excluded_run_flags(r))
    for column, measure in MEASURES.items():
        values = table[column]
        present = values.dropna()
        for pid, value in present.items():
            if measure.bad == "nonzero" and value > 0:
                flags[pid].append(f"{measure.label}: {format_value(value)}")
            elif measure.limit is not None and _beyond(value, measure.limit, measure.bad):
                side, unit = "<" if measure.bad == "low" else ">", measure.unit_suffix
                flags[pid].append(f"{measure.label} {format_value(value)}{unit} {side} "
                                  f"{format_value(measure.limit)}{unit}")
                past_limit[pid].add(column)
        if measure.bad == "nonzero" or len(present) < min_subjects:
            continue
        median = float(present.median())
        deviation = (present - median).abs()
        # 1.4826 MAD; when most of the cohort shares one value (every volume kept, no motion
        # correction) the MAD is 0, and 1.2533 x the mean absolute deviation stands in for it.
        spread = 1.4826 * float(deviation.median()) or 1.2533 * float(deviation.mean())
        if spread == 0:
            continue
        z = (present - median) / spread
        for pid, score in z.items():
            if column in past_limit[pid]:
                continue
            if (measure.bad in ("low", "both") and score < -robust_z) or (measure.bad in ("high", "both")
                                                                            and score > robust_z):
                flags[pid].append(f"{measure.label} {format_value(present[pid])}{measure.unit_suffix}: {score:+.1f} "
                                  f"robust SD from the cohort median {format_value(median)}")
    table["flags"] = ["; ".join(dict.fromkeys(flags[pid])) for pid in table.index]
    for pid, text in table["flags"].items():
        if text:
            log.warning("%s flagged by cohort QC: %s", pid, text)
    table = table.reset_index()
    if table["participant_id"].str.contains("_ses-").any():
        split = table["participant_id"].str.split("_ses-", n=1, expand=True)
        table.insert(1, "session", split[1] if 1 in split else None)
        table["participant_id"] = split[0]
    return table


def format_value(value: float) -> str:
    """Whole numbers and values of 100 or more without decimals (40500, 1624), anything else to 3
    significant digits (0.862, 0.5); '' for NaN."""
    if value is None or np.isnan(value):
        return ""
    value = float(value)
    return f"{value:.0f}" if abs(value) >= 100 or (value.is_integer() and value != 0) else f"{value:.3g}"


def _beyond(value: float, limit: float, bad: str) -> bool:
    return value < limit if bad == "low" else value > limit
