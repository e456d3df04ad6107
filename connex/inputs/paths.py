"""The one helper that builds every BIDS-style path ConneX reads or writes.

Paths follow BIDS naming: ``sub-01/ses-1/dwi/sub-01_ses-1_space-T1w_desc-preproc_dwi.nii.gz``.
Entities are always written in the order of :data:`ENTITY_ORDER`, whatever order the caller
passes them in, so two parts of the code can never name the same file differently.
Values may be Snakemake wildcards such as ``"{subject}"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: BIDS entity order (raw entities, then the derivative ones ConneX uses); ``desc`` is last.
ENTITY_ORDER = (
    "task", "acq", "ce", "rec", "dir", "run", "echo", "part",
    "from", "to", "mode", "space", "res", "den", "atlas", "seg", "model", "param", "meas", "stat", "label",
    "desc",
)

#: The datatype folders ConneX uses.
DATATYPES = ("anat", "dwi", "func", "figures")


def bids_name(*, subject: str, suffix: str, extension: str, session: str | None = None,
              **entities: str | None) -> str:
    """Return a BIDS file name such as ``sub-01_task-rest_bold.nii.gz``.

    Parameters
    ----------
    subject : str
        Participant label without the ``sub-`` prefix.
    suffix : str
        BIDS suffix (``T1w``, ``dwi``, ``bold``, ``relmat``...).
    extension : str
        File extension with its leading dot (``.nii.gz``, ``.tsv``).
    session : str, optional
        Session label without the ``ses-`` prefix.
    **entities : str or None
        Other entities by key (``task="rest"``, ``atlas="synth"``); ``None`` values are skipped.
        ``from``, a Python keyword, is passed as ``from_``.
    """
    entities = {key.rstrip("_"): value for key, value in entities.items() if value is not None}
    unknown = set(entities) - set(ENTITY_ORDER)
    if unknown:
        raise ValueError(f"Unknown BIDS entities {sorted(unknown)}; known: {ENTITY_ORDER}.")
    if not extension.startswith("."):
        raise ValueError(f"extension must start with '.'; {extension!r} was provided.")
    parts = [f"sub-{subject}"]
    if session is not None:
        parts.append(f"ses-{session}")
    parts += [f"{key}-{entities[key]}" for key in ENTITY_ORDER if key in entities]
    return "_".join(parts) + f"_{suffix}{extension}"


def bids_path(root: str | Path, *, subject: str, datatype: str | None, suffix: str, extension: str,
              session: str | None = None, **entities: str | None) -> Path:
    """Return ``root/sub-<subject>[/ses-<session>]/<datatype>/<bids_name(...)>``.

    Everything after ``root`` is named (``subject="01", datatype="dwi", suffix="dwi",
    extension=".nii.gz"``, then the entities); ``datatype=None`` puts the file directly in the
    subject (or session) folder.
    """
    folder = Path(root) / f"sub-{subject}"
    if session is not None:
        folder = folder / f"ses-{session}"
    if datatype is not None:
        folder = folder / datatype
    return folder / bids_name(subject=subject, suffix=suffix, extension=extension, session=session, **entities)


@dataclass(frozen=True)
class Visit:
    """One participant's scans of one session: what a per-subject job of the workflow processes.

    ``session`` is ``None`` in a dataset without ``ses-`` folders. Either field may be a
    Snakemake wildcard (``"{subject}"``, ``"{session}"``).
    """

    subject: str
    session: str | None = None

    @property
    def label(self) -> str:
        """``sub-01`` or ``sub-01_ses-1``: the visit in tables and log lines."""
        return f"sub-{self.subject}" + (f"_ses-{self.session}" if self.session is not None else "")

    @property
    def wildcards(self) -> dict[str, str]:
        """The values that fill a path pattern of this visit (``str.format`` keys)."""
        return {"subject": self.subject} | ({"session": self.session} if self.session is not None else {})


def group_path(root: str | Path, name: str) -> Path:
    """Return the path of a cohort-level output: ``root/group/<name>``."""
    return Path(root) / "group" / name


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar beside a data file (``x.nii.gz``, ``x.nii``, ``x.tsv`` -> ``x.json``)."""
    path = Path(path)
    for extension in (".nii.gz", ".nii"):
        if path.name.endswith(extension):
            return path.with_name(path.name[: -len(extension)] + ".json")
    return path.with_suffix(".json")
