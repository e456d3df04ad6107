"""Small I/O helpers that write outputs whole or not at all.

Every writer goes to a temporary file beside its target and renames it into place, so a run
killed mid-write never leaves a half-written file under its final name.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import nibabel as nib
import numpy as np
import pandas as pd

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it to ``target`` if the block succeeds.

    Temporary files of ``target`` left by an earlier run that was killed mid-write (no
    ``finally`` runs after SIGKILL) are removed first: one target has one writer, its job.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Keep the full suffix (".nii.gz") so writers that look at the extension behave the same.
    suffix = "".join(target.suffixes)
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*{glob.escape(suffix)}"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():  # mkstemp makes the file 0600; give it the usual permissions
            tmp.chmod(0o666 & ~_UMASK)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def staged_folder(target: str | Path) -> Iterator[Path]:
    """A temporary folder beside ``target``, renamed to ``target`` if the block succeeds and
    removed if it fails, so a folder of outputs (a dataset) appears whole or not at all. ``target``
    must not exist or be an empty folder."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if target.exists():
        target.rmdir()  # empty (the caller checked), else this raises
    stage.rename(target)


def write_json(data: dict, target: str | Path) -> Path:
    """Write ``data`` as indented JSON to ``target`` atomically (its ``Sources`` as BIDS URIs,
    :func:`bids_uris`)."""
    if isinstance(data.get("Sources"), list):
        data = {**data, "Sources": bids_uris(data["Sources"], target)}
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    return Path(target)


def bids_uris(sources: list, target: str | Path) -> list[str]:
    """``sources`` (paths) as BIDS URIs seen from the dataset that holds ``target``: ``bids::<path>``
    inside it, ``bids:<name>:<path>`` inside a dataset its ``dataset_description.json`` links to
    (``DatasetLinks``, e.g. ``raw``: the BIDS input), the path as given anywhere else (and
    everything when ``target`` is in no dataset). Already a URI: kept."""
    root = next((folder for folder in Path(target).resolve().parents
                 if (folder / "dataset_description.json").is_file()), None)
    if root is None:
        return [str(source) for source in sources]
    try:
        links = json.loads((root / "dataset_description.json").read_text()).get("DatasetLinks", {})
    except (OSError, ValueError, AttributeError):
        links = {}
    datasets = {"": root}
    for name, uri in (links.items() if isinstance(links, dict) else []):
        if isinstance(uri, str) and uri.startswith("file:"):
            datasets[name] = Path(url2pathname(urlparse(uri).path))
    out = []
    for source in sources:
        text = str(source)
        path = Path(text).resolve()
        # the innermost dataset (derivatives may sit inside the raw dataset's derivatives/)
        inside = [(name, base) for name, base in datasets.items() if path.is_relative_to(base)]
        if inside and "://" not in text and not text.startswith("bids:"):
            name, base = max(inside, key=lambda item: len(item[1].parts))
            text = f"bids:{name}:{path.relative_to(base).as_posix()}"
        out.append(text)
    return out


def write_tsv(table: pd.DataFrame, target: str | Path, *, index: bool = False) -> Path:
    """Write a table as tab-separated values with ``n/a`` for missing cells, atomically."""
    with atomic_path(target) as tmp:
        table.to_csv(tmp, sep="\t", index=index, na_rep="n/a", float_format="%.10g")
    return Path(target)


def write_array(array: np.ndarray, columns: list[str], target: str | Path) -> Path:
    """Write a numeric 2-D array (a connectivity matrix, time series) as TSV with a header row
    of column names, atomically. Faster than pandas for large float arrays."""
    array = np.asarray(array, dtype=float)
    if array.ndim != 2 or array.shape[1] != len(columns):
        raise ValueError(f"Expected a 2-D array with {len(columns)} columns; got shape {array.shape}.")
    with atomic_path(target) as tmp:
        np.savetxt(tmp, array, fmt="%.10g", delimiter="\t", header="\t".join(columns), comments="")
    return Path(target)


def write_text(text: str, target: str | Path) -> Path:
    """Write ``text`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)


def save_nifti(image: nib.Nifti1Image, target: str | Path) -> Path:
    """Save a NIfTI image atomically (gzipped when ``target`` ends in ``.gz``)."""
    with atomic_path(target) as tmp:
        nib.save(image, tmp)
    return Path(target)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
