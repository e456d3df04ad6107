"""The MNI152 template and tissue maps that ship with nilearn (no download needed).

nilearn ships the ICBM 2009a nonlinear symmetric template (``mni_icbm152_*_tal_nlin_sym_09a``),
called ``MNI152NLin2009aSym`` in TemplateFlow, with grey- and white-matter probability maps and
a brain mask. Everything here is resampled by nilearn to a 1 or 2 mm grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from connex.errors import check_choice

#: TemplateFlow name of the template nilearn ships.
MNI_SPACE = "MNI152NLin2009aSym"


@dataclass(frozen=True)
class MNITemplate:
    """The MNI152 T1w template with tissue maps on one grid.

    Attributes
    ----------
    t1w : ndarray (X, Y, Z)
        Skull-stripped T1w intensities scaled to [0, 1].
    gm, wm, csf : ndarray (X, Y, Z)
        Tissue probabilities; ``csf`` is what the brain mask holds beyond GM and WM.
    brain_mask : ndarray (X, Y, Z) of bool
    affine : ndarray (4, 4)
        Voxel-to-MNI-mm affine (RAS).
    """

    t1w: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain_mask: np.ndarray
    affine: np.ndarray

    @property
    def voxel_size(self) -> float:
        return float(abs(self.affine[0, 0]))


@lru_cache(maxsize=2)
def load_mni_template(resolution: int = 2) -> MNITemplate:
    """Load the nilearn MNI152 template and tissue maps at ``resolution`` mm (1 or 2)."""
    check_choice("resolution", resolution, (1, 2))
    from nilearn import datasets  # here, not at import: every job imports this module, few load the template

    t1w = datasets.load_mni152_template(resolution=resolution)
    gm = datasets.load_mni152_gm_template(resolution=resolution).get_fdata(dtype=np.float32)
    wm = datasets.load_mni152_wm_template(resolution=resolution).get_fdata(dtype=np.float32)
    mask = datasets.load_mni152_brain_mask(resolution=resolution).get_fdata() > 0.5
    csf = np.clip(mask.astype(np.float32) - gm - wm, 0.0, 1.0)
    data = t1w.get_fdata(dtype=np.float32)
    data = data / data.max()
    return MNITemplate(t1w=data, gm=np.clip(gm, 0, 1), wm=np.clip(wm, 0, 1), csf=csf,
                       brain_mask=mask, affine=t1w.affine.copy())


def head_model(template: MNITemplate) -> np.ndarray:
    """Template T1w intensities with a CSF rim, skull and scalp around the brain (X, Y, Z).

    The template nilearn ships is skull-stripped, but a scanner's T1w is a whole head. This
    crude head (3 mm dark CSF, 5 mm dark skull, 5 mm bright scalp) lets an affine registration
    match a whole-head image to the template without stretching the brain onto the scalp; the
    synthetic cohort uses it as its anatomy.
    """
    outside_mm = ndimage.distance_transform_edt(~template.brain_mask) * template.voxel_size
    head = template.t1w * template.brain_mask
    head = np.where((outside_mm > 0) & (outside_mm <= 3), 0.12, head)
    head = np.where((outside_mm > 3) & (outside_mm <= 8), 0.04, head)
    head = np.where((outside_mm > 8) & (outside_mm <= 13), 0.75, head)
    return ndimage.gaussian_filter(head.astype(np.float32), 0.5)
