"""A T1w phantom rendered from its own tissue maps, to measure tissue segmentation.

The demo cohort's T1w is the MNI template's average T1w seen through an affine
(:func:`connex.synth.images.render_t1w`), so its "true" tissues are the template priors through
that affine: the warped priors are right by construction, and that cohort cannot tell a
segmentation of the image from the priors. Here the anatomy is an individual's instead: hard
labels drawn around the template priors (the priors' most likely tissue, perturbed by smooth
random fields, so that cortex, sulci and ventricles sit where the template says they may but
not exactly where its average is), with partial volume, rendered as T1w intensities per tissue.
The truth is those labels; the T1w is made from them, so an image segmentation can find them
and the template priors cannot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from connex.anat.templates import MNITemplate
from connex.synth.images import Grid, sample_mni, smooth_bias_field

#: T1w brightness per tissue (the template T1w's medians where a prior exceeds 0.9).
T1W_BRIGHTNESS = {"csf": 0.28, "gm": 0.65, "wm": 0.88}
#: Label values of :attr:`TissuePhantom.labels` (0 is outside the brain).
LABELS = {"csf": 1, "gm": 2, "wm": 3}


@dataclass(frozen=True)
class TissuePhantom:
    """A rendered T1w and its true tissues on one grid.

    t1w : ndarray (X, Y, Z) float32; tissues : {"gm", "wm", "csf"} -> ndarray (X, Y, Z) of
    partial-volume fractions; labels : ndarray (X, Y, Z) int (0 outside, 1 CSF, 2 GM, 3 WM: the
    largest fraction where the tissues fill at least half the voxel); affine : (4, 4).
    """

    t1w: np.ndarray
    tissues: dict[str, np.ndarray]
    labels: np.ndarray
    affine: np.ndarray


def individual_labels(template: MNITemplate, rng: np.random.Generator, *, variation: float = 1.0,
                      scale_mm: float = 3.0, csf_shift: float = 0.0) -> np.ndarray:
    """Hard tissue labels of a made-up individual on the template grid (0 outside the brain).

    Each voxel takes the tissue ``k`` with the largest ``log p_k + variation * n_k + shift_k``:
    ``p_k`` the template prior, ``n_k`` a unit-variance Gaussian field smoothed over
    ``scale_mm``, ``shift_k`` is ``csf_shift`` for CSF (atrophy: larger sulci and ventricles
    than the template's) and 0 otherwise. Where a prior is near 1 the label is the template's;
    where the priors are uncertain (the cortex) the fields move the boundaries.
    """
    sigma = scale_mm / template.voxel_size
    scores = []
    for name in LABELS:
        field = ndimage.gaussian_filter(rng.standard_normal(template.brain_mask.shape).astype(np.float32), sigma)
        field /= field.std() + 1e-12
        shift = csf_shift if name == "csf" else 0.0
        scores.append(np.log(np.clip(getattr(template, name), 1e-3, 1.0)) + variation * field + shift)
    labels = np.argmax(np.stack(scores), axis=0).astype(np.int16)
    order = np.array([LABELS[name] for name in LABELS], dtype=np.int16)
    return np.where(template.brain_mask, order[labels], 0).astype(np.int16)


def render_phantom(template: MNITemplate, labels: np.ndarray, grid: Grid, subject_to_mni: np.ndarray,
                   rng: np.random.Generator, *, noise_sd: float = 0.02, bias_strength: float = 0.15,
                   intensity_scale: float = 1.0) -> TissuePhantom:
    """The T1w of ``labels`` (template grid) on a scanner-space ``grid``, and its true tissues.

    Tissue fractions are the one-hot labels (with an outside class) smoothed to the grid's voxel
    size and resampled; the T1w is their brightness-weighted sum plus the head outside the brain
    (:func:`connex.anat.templates.head_model`'s CSF rim, skull and scalp), times a smooth bias
    field, with Rician noise of ``noise_sd`` (as in :func:`connex.synth.images.render_t1w`).
    """
    voxel = float(np.cbrt(abs(np.linalg.det(grid.affine[:3, :3]))))
    sigma = max(voxel**2 - template.voxel_size**2, 0.0) ** 0.5 / 2.355 / template.voxel_size

    def resample(volume: np.ndarray) -> np.ndarray:
        smoothed = ndimage.gaussian_filter(volume.astype(np.float32), sigma) if sigma > 0 else volume
        return np.clip(sample_mni(smoothed, template.affine, grid, subject_to_mni, order=1), 0, None)

    outside_mm = ndimage.distance_transform_edt(labels == 0) * template.voxel_size
    head = np.where(outside_mm <= 3, 0.12, np.where(outside_mm <= 8, 0.04, np.where(outside_mm <= 13, 0.75, 0.0)))
    tissues = {name: resample(labels == value) for name, value in LABELS.items()}
    image = resample((labels == 0) * head) + sum(T1W_BRIGHTNESS[name] * tissues[name] for name in LABELS)
    image *= smooth_bias_field(grid.shape, rng, bias_strength)
    noisy = np.hypot(image + rng.normal(0, noise_sd, image.shape), rng.normal(0, noise_sd, image.shape))
    stack = np.stack([tissues[name] for name in LABELS])
    hard = np.where(stack.sum(0) >= 0.5, np.array(list(LABELS.values()))[stack.argmax(0)], 0)
    return TissuePhantom(t1w=(noisy * 1000 * intensity_scale).astype(np.float32), tissues=tissues,
                         labels=hard.astype(np.int16), affine=grid.affine)
