"""T1w processing: reorientation, bias correction, brain extraction, registration to MNI152,
tissue maps and atlases in T1w space.

1. N4 bias-field correction (ANTsPy) of the RAS-reoriented T1w.
2. Affine registration (dipy, mutual information; centre of mass, translation, rigid, affine)
   of the whole head to the nilearn MNI152 template given a crude head
   (:func:`connex.anat.templates.head_model`): with a skull-stripped template an affine stretches
   the brain onto the scalp; with a head it does not. Only the HEAD_HEIGHT_MM below the top of
   the head are used, so that a long neck does not pull the alignment down.
3. A rough brain mask: the template brain mask brought back through that affine.
4. SyN (dipy, symmetric diffeomorphic, cross-correlation) of the masked T1w to the
   skull-stripped template, starting from the affine. When SyN matches the template worse
   than the affine alone (it diverged), the affine is kept with zero displacement fields
   (``nonlinear: false`` in the metrics).
5. The final brain mask, the tissue priors (GM, WM, CSF) and every atlas come back to T1w
   space through the inverse transform (labels by nearest neighbour).

dipy rather than ANTs: measured on the synthetic cohort, dipy is more accurate (0.43 vs
0.86 mm mean error) at under a minute per subject, it is deterministic, and ANTs' SyN diverged
on the real bids-xa30 T1w in about one run of three (``python -m connex.benchmarks anat``).

Transform files (:class:`Registration`), in ITK's formats (:mod:`connex.inputs.transforms`:
ANTs' ``antsApplyTransforms`` and nitransforms read them; LPS on disk, RAS in memory):

- ``*_from-T1w_to-MNI152NLin2009aSym_mode-image_desc-affine_xfm.txt``: an ITK affine ``A``
  mapping template-world points to T1w-world points (the matrix that resamples the T1w onto
  the template).
- ``*_from-T1w_to-MNI152NLin2009aSym_mode-image_desc-warp_xfm.nii.gz``: an ITK displacement field
  ``u`` on the 2 mm template grid: the template point ``x`` takes the T1w value at
  ``A (x + u(x))``; ``antsApplyTransforms -r MNI -i T1w -t warp -t affine``.
- ``*_from-MNI152NLin2009aSym_to-T1w_mode-image_desc-warp_xfm.nii.gz``: the inverse field
  ``v`` on the same grid (only the nonlinear part: the MNI -> T1w map is this field after the
  inverted affine, the ``.h5`` below holds both): the T1w point ``y`` takes the template value at ``z + v(z)``,
  ``z = A^-1 y``; ``antsApplyTransforms -r T1w -i MNI -t [affine,1] -t warp``.

(ANTs sends a reference point through its ``-t`` list from first to last.)

- ``*_from-T1w_to-MNI152NLin2009aSym_mode-image_xfm.h5`` and ``*_from-MNI152NLin2009aSym_to-T1w_mode-image_xfm.h5``:
  each direction as one ITK composite HDF5 file (the affine and the field, or the inverted affine
  and the inverse field), fMRIPrep's single-file form: ``antsApplyTransforms -r MNI -i T1w -t <.h5>``.

:meth:`Registration.load` rebuilds the dipy ``DiffeomorphicMap`` from the three files.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from connex.anat.atlases import Atlas
from connex.anat.coreg import seeded_numpy_global
from connex.anat.templates import MNI_SPACE, MNITemplate, head_model, load_mni_template
from connex.errors import BIDSError
from connex.inputs.io import save_nifti, write_json
from connex.inputs.paths import sidecar_path
from connex.inputs.transforms import (
    is_itk_text,
    load_itk_affine,
    load_itk_displacements,
    load_plain_affine,
    save_itk_affine,
    save_itk_composite,
    save_itk_displacements,
)
from connex.registry import TISSUES

log = logging.getLogger(__name__)

#: Height of the head kept for the affine (top of the head to below the cerebellum).
HEAD_HEIGHT_MM = 180.0
#: Below this correlation between the registered brain and the template a warning says the
#: registration probably failed (good ones: above 0.9 synthetic, 0.47 on bids-xa30's 2 mm
#: T1w; failed ones seen during development: 0.04-0.11).
MIN_TEMPLATE_CORRELATION = 0.3
#: SyN counts as diverged when it matches the template this much worse than the affine alone
#: (diverged runs seen: 0.04 against 0.55; a sound SyN on an affine-only misalignment can land
#: a hair below the affine, 0.82 against 0.83, from interpolation).
SYN_DIVERGENCE_MARGIN = 0.05
#: dipy SyN iterations per level (coarse to fine) and affine iterations per level.
SYN_LEVEL_ITERS = [10, 10, 5]
AFFINE_LEVEL_ITERS = [1000, 100, 10]
#: Share of the template grid's voxels dipy's mutual information samples for the affine (a
#: regular grid, jittered), and the seed of that jitter. A quarter of the voxels takes a third of
#: the time of every voxel for the same affine (within 0.05 mm on the demo; README, anatomy).
AFFINE_SAMPLING_PROPORTION = 0.25
AFFINE_SAMPLING_SEED = 0


def load_t1w(path: str | Path) -> nib.Nifti1Image:
    """Load a T1w image reoriented to RAS, as float32.

    Raises
    ------
    BIDSError
        Not 3-D (a 4-D image with one volume is accepted), or an affine that cannot be inverted.
    """
    path = Path(path)
    try:
        image = nib.load(path)
    except Exception as error:
        raise BIDSError(f"{path}: not a readable NIfTI image ({error}).") from error
    shape = image.shape
    if len(shape) == 4 and shape[3] == 1:
        image = image.slicer[..., 0]
    if image.ndim != 3:
        raise BIDSError(f"{path}: a T1w must be a 3-D image; got shape {shape}.")
    affine = image.affine
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-6:
        raise BIDSError(f"{path}: the affine cannot be inverted (check the qform/sform):\n{affine}")
    canonical = nib.as_closest_canonical(image)
    data = np.asarray(canonical.dataobj, dtype=np.float32)
    if not np.isfinite(data).all():
        raise BIDSError(f"{path}: the image holds NaN or infinite values.")
    return nib.Nifti1Image(data, canonical.affine)


@dataclass
class Registration:
    """A T1w <-> MNI152 registration: an affine and a pair of displacement fields.

    affine : ndarray (4, 4)
        ``A``, template world -> T1w world (mm, RAS).
    warp : ndarray (X, Y, Z, 3), float32
        ``u`` on the template grid: the T1w is resampled onto the template by sampling it at
        ``A (x + u(x))`` for each template point ``x``.
    inverse_warp : ndarray (X, Y, Z, 3), float32
        ``v`` on the template grid: the template is resampled onto the T1w by sampling it at
        ``z + v(z)``, ``z = A^-1 y``, for each T1w point ``y``.
    template_affine : ndarray (4, 4); t1w_shape, t1w_affine: the grids it was computed on.

    This is the ``DiffeomorphicMap`` that dipy's ``syn_registration`` returns (an inverted
    map: ``u`` is its ``backward`` field, ``v`` its ``forward`` one); :meth:`mapping` rebuilds it.
    """

    affine: np.ndarray
    warp: np.ndarray
    inverse_warp: np.ndarray
    template_affine: np.ndarray
    t1w_shape: tuple[int, int, int]
    t1w_affine: np.ndarray

    @classmethod
    def from_dipy(cls, mapping, t1w: nib.Nifti1Image) -> Registration:
        """From the map dipy's ``syn_registration`` returned (static = template)."""
        return cls(affine=np.linalg.inv(mapping.prealign), warp=np.asarray(mapping.backward, dtype=np.float32),
                   inverse_warp=np.asarray(mapping.forward, dtype=np.float32),
                   template_affine=np.asarray(mapping.disp_grid2world), t1w_shape=tuple(t1w.shape[:3]),
                   t1w_affine=t1w.affine)

    def mapping(self):
        """The dipy ``DiffeomorphicMap``: ``transform`` takes T1w images to the template grid,
        ``transform_inverse`` template images to the T1w grid."""
        from dipy.align.imwarp import DiffeomorphicMap

        shape = self.warp.shape[:3]
        mapping = DiffeomorphicMap(3, shape, disp_grid2world=self.template_affine, domain_shape=self.t1w_shape,
                                   domain_grid2world=self.t1w_affine, codomain_shape=shape,
                                   codomain_grid2world=self.template_affine, prealign=np.linalg.inv(self.affine))
        mapping.forward = np.ascontiguousarray(self.inverse_warp, dtype=np.float32)
        mapping.backward = np.ascontiguousarray(self.warp, dtype=np.float32)
        mapping.is_inverse = True
        return mapping

    def to_t1w(self, data: np.ndarray, data_affine: np.ndarray, *, interpolation: str) -> np.ndarray:
        """An MNI-space volume (any grid, ``data_affine``) resampled on the T1w grid.

        ``interpolation``: ``"linear"`` or ``"nearest"`` (labels; returns int32).
        """
        if interpolation == "nearest":
            data = np.asarray(data, dtype=np.int32)
        moved = self.mapping().transform_inverse(data, interpolation=interpolation,
                                                 image_world2grid=np.linalg.inv(data_affine),
                                                 out_shape=np.asarray(self.t1w_shape, dtype=np.int32),
                                                 out_grid2world=self.t1w_affine)
        return np.asarray(moved)

    def to_template(self, data: np.ndarray) -> np.ndarray:
        """A T1w-grid volume resampled on the template grid (linear)."""
        return np.asarray(self.mapping().transform(np.asarray(data, dtype=np.float32), interpolation="linear"))

    def mni_points_to_t1w(self, points: np.ndarray) -> np.ndarray:
        """Template world points (N, 3) -> T1w world points (N, 3)."""
        return np.asarray(self.mapping().transform_points(np.asarray(points, dtype=np.float64)))

    def save(self, *, affine: Path, warp: Path, inverse_warp: Path) -> None:
        """Write the three transform files in ITK's formats (atomically)."""
        save_itk_affine(self.affine, affine)
        save_itk_displacements(self.warp, self.template_affine, warp)
        save_itk_displacements(self.inverse_warp, self.template_affine, inverse_warp)

    def save_composites(self, *, composite: Path, inverse_composite: Path) -> None:
        """Each direction as one ITK composite ``.h5`` (fMRIPrep's single-file form): T1w -> MNI
        is ``-t warp -t affine``, MNI -> T1w ``-t [affine,1] -t inverse_warp``."""
        save_itk_composite([("field", self.warp, self.template_affine), ("affine", self.affine)], composite)
        save_itk_composite([("affine", np.linalg.inv(self.affine)), ("field", self.inverse_warp, self.template_affine)],
                           inverse_composite)

    @classmethod
    def load(cls, *, affine: str | Path, warp: str | Path, inverse_warp: str | Path,
             t1w: nib.Nifti1Image) -> Registration:
        """Read the files written by :meth:`save` (or by earlier versions); ``t1w``: any image
        on the T1w grid."""
        to_template, template_affine = load_itk_displacements(warp)
        to_t1w, _ = load_itk_displacements(inverse_warp)
        # earlier versions wrote A as a plain 4x4 RAS matrix (the same direction)
        matrix = load_itk_affine(affine) if is_itk_text(affine) else load_plain_affine(affine)
        return cls(affine=matrix, warp=to_template, inverse_warp=to_t1w,
                   template_affine=template_affine, t1w_shape=tuple(t1w.shape[:3]), t1w_affine=t1w.affine)


@dataclass
class AnatResult:
    """What :func:`register_t1w` produced: the bias-corrected RAS T1w, its brain mask, the
    registration and timings and quality figures."""

    preproc: nib.Nifti1Image
    brain_mask: nib.Nifti1Image
    registration: Registration
    metrics: dict = field(default_factory=dict)


def register_t1w(t1w: nib.Nifti1Image, *, n_threads: int = 1) -> AnatResult:
    """Bias-correct, brain-extract and register a RAS T1w to the MNI152 template (2 mm).

    Deterministic: the same image gives the same result (the affine's sample jitter has a fixed
    seed).

    Parameters
    ----------
    t1w : Nifti1Image (X, Y, Z)
        From :func:`load_t1w`.
    n_threads : int
        Threads of ANTs' N4 (dipy's registration uses one).
    """
    from dipy.align import affine_registration, syn_registration
    from dipy.align.imaffine import AffineMap

    template = load_mni_template(2)
    metrics: dict = {}
    start = time.perf_counter()
    corrected, head_mask = _n4(t1w, n_threads)
    metrics["n4_seconds"] = round(time.perf_counter() - start, 2)

    start = time.perf_counter()
    cropped = _crop_below_top_of_head(corrected, head_mask)
    with seeded_numpy_global(AFFINE_SAMPLING_SEED):  # dipy jitters its samples with numpy's global generator
        _, affine = affine_registration(np.asarray(cropped.dataobj), head_model(template),
                                        moving_affine=cropped.affine, static_affine=template.affine,
                                        pipeline=["center_of_mass", "translation", "rigid", "affine"],
                                        level_iters=AFFINE_LEVEL_ITERS, sigmas=[3.0, 1.0, 0.0], factors=[4, 2, 1],
                                        sampling_proportion=AFFINE_SAMPLING_PROPORTION)
    data = np.asarray(corrected.dataobj, dtype=np.float32)
    affine_map = AffineMap(affine, domain_grid_shape=template.t1w.shape, domain_grid2world=template.affine,
                           codomain_grid_shape=data.shape, codomain_grid2world=corrected.affine)
    rough_mask = affine_map.transform_inverse(template.brain_mask.astype(np.float32), interpolation="linear") > 0.5
    brain = data * rough_mask
    affine_correlation = _template_correlation(affine_map.transform(brain), template)
    metrics["affine_seconds"] = round(time.perf_counter() - start, 2)
    metrics["affine_template_correlation"] = round(affine_correlation, 4)

    start = time.perf_counter()
    _, mapping = syn_registration(brain, template.t1w, moving_affine=corrected.affine, static_affine=template.affine,
                                  prealign=affine, level_iters=SYN_LEVEL_ITERS)
    registration = Registration.from_dipy(mapping, corrected)
    correlation = _template_correlation(registration.to_template(brain), template)
    metrics["syn_seconds"] = round(time.perf_counter() - start, 2)
    metrics["nonlinear"] = bool(correlation >= affine_correlation - SYN_DIVERGENCE_MARGIN)
    if not metrics["nonlinear"]:
        # SyN made things worse than the affine alone (it diverged): keep the affine, with zero
        # displacement fields so every output keeps the same form.
        log.warning("SyN diverged (template correlation %.2f, affine alone %.2f): keeping the affine "
                    "registration with no nonlinear part.", correlation, affine_correlation)
        registration.warp = np.zeros_like(registration.warp)
        registration.inverse_warp = np.zeros_like(registration.inverse_warp)
        correlation = affine_correlation
    metrics["template_correlation"] = round(correlation, 4)
    if correlation < MIN_TEMPLATE_CORRELATION:
        log.warning("The registered T1w correlates poorly with the template (r = %.2f < %.2f): the "
                    "registration probably failed; check the registration QC figure.",
                    correlation, MIN_TEMPLATE_CORRELATION)

    mask = registration.to_t1w(template.brain_mask.astype(np.float32), template.affine, interpolation="linear") > 0.5
    metrics["brain_volume_ml"] = round(float(mask.sum() * abs(np.linalg.det(corrected.affine[:3, :3])) / 1000), 1)
    return AnatResult(preproc=corrected, brain_mask=nib.Nifti1Image(mask.astype(np.uint8), corrected.affine),
                      registration=registration, metrics=metrics)


def _n4(t1w: nib.Nifti1Image, n_threads: int) -> tuple[nib.Nifti1Image, np.ndarray]:
    """N4 bias-field correction inside a head mask (ANTs' Otsu-based ``get_mask``)."""
    # ITK reads its thread count when ANTs is first imported: set it before.
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(n_threads)
    import ants

    moving = ants.from_nibabel_nifti(t1w)
    head_mask = ants.get_mask(moving, cleanup=2)
    corrected = ants.n4_bias_field_correction(moving, mask=head_mask, shrink_factor=4,
                                              convergence={"iters": [50, 50, 30], "tol": 1e-7})
    data = corrected.numpy().astype(np.float32)
    return nib.Nifti1Image(data, t1w.affine), head_mask.numpy() > 0


def _template_correlation(warped: np.ndarray, template: MNITemplate) -> float:
    """Correlation of a brain warped to the template grid with the template T1w, inside the
    template brain mask where the warped image has signal."""
    inside = template.brain_mask & (warped > 0)
    if inside.sum() < 10:
        return 0.0
    return float(np.corrcoef(warped[inside], template.t1w[inside])[0, 1])


def _crop_below_top_of_head(image: nib.Nifti1Image, head_mask: np.ndarray) -> nib.Nifti1Image:
    """The part of a RAS image within HEAD_HEIGHT_MM below the highest slice of the head."""
    rows = np.flatnonzero(head_mask.reshape(-1, head_mask.shape[2]).any(0))
    if len(rows) == 0:
        return image
    bottom = max(0, int(rows.max()) - round(HEAD_HEIGHT_MM / image.header.get_zooms()[2]))
    return image.slicer[:, :, bottom:]


def save_anat(result: AnatResult, *, preproc: Path, brain_mask: Path, affine: Path, warp: Path,
              inverse_warp: Path, metrics: Path, source: str) -> None:
    """Write the outputs of :func:`register_t1w` (atomically) with JSON sidecars."""
    save_nifti(result.preproc, preproc)
    save_nifti(result.brain_mask, brain_mask)
    result.registration.save(affine=affine, warp=warp, inverse_warp=inverse_warp)
    write_json({"Sources": [source], "SkullStripped": False, "Description":
                "RAS-reoriented, N4 bias-corrected T1w"}, sidecar_path(preproc))
    write_json({"Sources": [source], "Type": "Brain", "Description":
                "MNI152 brain mask brought to T1w space through the inverse registration"},
               sidecar_path(brain_mask))
    write_json({**result.metrics, "Sources": [source], "TemplateSpace": MNI_SPACE,
                "Transforms": {"T1w_to_MNI": [warp.name, affine.name], "MNI_to_T1w": [affine.name, inverse_warp.name],
                               "Format": "ITK (ANTs): the affine as ITK text, the displacement fields as ITK "
                                         "NIfTI on the 2 mm template grid, each list in antsApplyTransforms' "
                                         "-t order (MNI_to_T1w inverts the affine: -t [affine,1] -t warp)"}}, metrics)


def tissue_maps_to_t1w(brain_mask: nib.Nifti1Image, registration: Registration) -> dict[str, nib.Nifti1Image]:
    """GM, WM and CSF probability maps in T1w space: the template priors through the inverse
    registration, zero outside the brain mask, normalised to sum to at most 1."""
    template = load_mni_template(2)
    mask = np.asarray(brain_mask.dataobj) > 0
    maps = {name: np.clip(registration.to_t1w(getattr(template, name.lower()), template.affine,
                                              interpolation="linear"), 0, 1) * mask
            for name in TISSUES}
    total = np.maximum(sum(maps.values()), 1.0)
    return {name: nib.Nifti1Image((value / total).astype(np.float32), brain_mask.affine)
            for name, value in maps.items()}


def atlas_to_t1w(atlas: Atlas, brain_mask: nib.Nifti1Image, registration: Registration
                 ) -> tuple[nib.Nifti1Image, dict]:
    """The atlas in the T1w grid, restricted to the brain mask, and a report of region sizes.

    Every region keeps its atlas index; regions that lose all their voxels are listed in the
    report (``MissingRegions``) and logged, never renumbered or dropped.
    """
    moved = registration.to_t1w(atlas.labels, atlas.affine, interpolation="nearest")
    labels = moved.astype(np.int32) * (np.asarray(brain_mask.dataobj) > 0)
    counts = np.bincount(labels.ravel(), minlength=int(atlas.table["index"].max()) + 1)
    voxel_ml = float(np.prod(brain_mask.header.get_zooms()[:3])) / 1000
    missing = [{"index": int(i), "name": name} for i, name in zip(atlas.table["index"], atlas.table["name"])
               if counts[i] == 0]
    if missing:
        log.warning("Atlas %s: %d region(s) have no voxel in T1w space: %s", atlas.name, len(missing),
                    ", ".join(m["name"] for m in missing))
    if not (labels > 0).any():
        raise BIDSError(f"Atlas {atlas.name}: no labelled voxel overlaps the brain mask in T1w space; "
                        "the registration or the atlas is wrong.")
    report = {**atlas.description(), "NumberOfRegionsPresent": atlas.n_regions - len(missing),
              "MissingRegions": missing,
              "RegionVolumesML": {name: round(counts[i] * voxel_ml, 3)
                                  for i, name in zip(atlas.table["index"], atlas.table["name"])}}
    image = nib.Nifti1Image(labels, brain_mask.affine)
    image.header.set_xyzt_units("mm")
    return image, report
