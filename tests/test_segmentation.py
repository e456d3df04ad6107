"""Tissue maps of the subject's own T1w (Atropos with the warped priors) against known tissues,
and the fallback to the template priors."""

import json
import logging

import nibabel as nib
import numpy as np
import pytest

from connex.anat import segmentation
from connex.anat.segmentation import DSEG_LABELS, dice, hard_labels, save_tissue_maps, segment_tissues
from connex.anat.templates import load_mni_template
from connex.errors import ConfigError
from connex.inputs.paths import sidecar_path
from connex.registry import TISSUES
from connex.synth.images import Grid, sample_mni
from connex.synth.tissues import individual_labels, render_phantom

VOXEL_MM = 3.0


@pytest.fixture(scope="module")
def phantom():
    """A 3 mm T1w rendered from an individual's tissues (labels drawn around the template priors),
    on the template's world grid, with the template priors as a perfect registration gives them."""
    template = load_mni_template(2)
    rng = np.random.default_rng(0)
    labels = individual_labels(template, rng, variation=1.0)
    low = template.affine[:3, 3]
    high = template.affine[:3, :3] @ (np.array(template.brain_mask.shape) - 1) + low
    affine = np.diag([VOXEL_MM] * 3 + [1.0])
    affine[:3, 3] = low
    grid = Grid(tuple(int(n) for n in np.floor((high - low) / VOXEL_MM) + 1), affine)
    image = render_phantom(template, labels, grid, np.eye(4), rng)
    mask = sample_mni(template.brain_mask.astype(np.float32), template.affine, grid, np.eye(4)) > 0.5
    raw = {name: sample_mni(getattr(template, name.lower()), template.affine, grid, np.eye(4)) * mask
           for name in TISSUES}
    total = np.maximum(sum(raw.values()), 1.0)
    priors = {name: nib.Nifti1Image((raw[name] / total).astype(np.float32), affine) for name in TISSUES}
    truth = hard_labels({name: image.tissues[name.lower()] for name in TISSUES}, image.labels > 0)
    return (nib.Nifti1Image(image.t1w, affine), nib.Nifti1Image(mask.astype(np.uint8), affine), priors, truth)


def tissue_dice(labels, truth):
    return {name: dice(labels, truth, index) for name, index in DSEG_LABELS.items()}


def test_segmentation_finds_the_individual_tissues_the_template_priors_miss(phantom):
    """Dice of hard labels against the phantom's true tissues: the priors (the template's average
    anatomy) stay below the bounds, the segmentation of the image passes them (measured: GM
    0.89 vs 0.86, WM 0.92 vs 0.84, CSF 0.69 vs 0.58)."""
    t1w, mask, priors, truth = phantom
    bounds = {"GM": 0.87, "WM": 0.9, "CSF": 0.65}
    result = segment_tissues(t1w, mask, priors)
    assert result.method == "atropos" and result.metrics["FallbackReason"] is None
    segmented = tissue_dice(np.asarray(result.dseg.dataobj), truth)
    template = tissue_dice(hard_labels({k: np.asarray(v.dataobj) for k, v in priors.items()},
                                       np.asarray(mask.dataobj) > 0), truth)
    for name, bound in bounds.items():
        assert template[name] < bound < segmented[name], (name, template[name], segmented[name])
    # maps: zero outside the brain mask, summing to at most 1, and the hard labels are their argmax
    inside = np.asarray(mask.dataobj) > 0
    maps = {name: np.asarray(result.maps[name].dataobj) for name in TISSUES}
    total = sum(maps.values())
    assert total.max() <= 1 + 1e-5 and np.all(total[~inside] == 0) and total[inside].min() > 0.99
    assert np.array_equal(hard_labels(maps, inside), np.asarray(result.dseg.dataobj))
    assert set(np.unique(result.dseg.dataobj)) == {0, 1, 2, 3}


def test_template_method_keeps_the_priors(phantom):
    t1w, mask, priors, _ = phantom
    result = segment_tissues(t1w, mask, priors, method="template")
    assert result.method == "template" and result.metrics["FallbackReason"] is None
    for name in TISSUES:
        assert np.array_equal(np.asarray(result.maps[name].dataobj), np.asarray(priors[name].dataobj))
    with pytest.raises(ConfigError, match="anat.tissues"):
        segment_tissues(t1w, mask, priors, method="fast")


@pytest.mark.parametrize("kind", ["constant", "noise", "inverted"])
def test_degenerate_image_falls_back_to_the_priors_with_a_warning(phantom, kind, caplog):
    """No T1 contrast between the priors' tissues (a flat image, pure noise, a T2-like contrast):
    the priors are kept, with a warning, and the metrics say why."""
    t1w, mask, priors, _ = phantom
    data = np.asarray(t1w.dataobj)
    degenerate = {"constant": np.full_like(data, 500.0),
                  "noise": np.random.default_rng(1).normal(500, 50, data.shape).astype(np.float32),
                  "inverted": np.where(np.asarray(mask.dataobj) > 0, data.max() - data, data)}[kind]
    with caplog.at_level(logging.WARNING, logger="connex.anat.segmentation"):
        result = segment_tissues(nib.Nifti1Image(degenerate, t1w.affine), mask, priors)
    assert result.method == "template"
    assert "no T1 contrast" in result.metrics["FallbackReason"]
    assert "keeping the warped template priors" in caplog.text
    assert np.array_equal(np.asarray(result.maps["WM"].dataobj), np.asarray(priors["WM"].dataobj))


def test_implausible_or_failed_segmentation_falls_back(phantom, monkeypatch, caplog):
    t1w, mask, priors, _ = phantom
    inside = np.asarray(mask.dataobj) > 0
    data = np.asarray(t1w.dataobj)
    # all CSF: a tissue volume out of bounds
    monkeypatch.setattr(segmentation, "atropos_tissues", lambda *a, **k: ({
        "GM": np.zeros(inside.shape, np.float32), "WM": np.zeros(inside.shape, np.float32),
        "CSF": inside.astype(np.float32)}, data))
    with caplog.at_level(logging.WARNING, logger="connex.anat.segmentation"):
        result = segment_tissues(t1w, mask, priors)
    assert result.method == "template" and "GM takes 0.0% of the brain mask" in result.metrics["FallbackReason"]
    # GM and WM swapped (volume bounds widened): far from the priors
    swapped = {"GM": np.asarray(priors["WM"].dataobj), "WM": np.asarray(priors["GM"].dataobj),
               "CSF": np.asarray(priors["CSF"].dataobj)}
    monkeypatch.setattr(segmentation, "atropos_tissues", lambda *a, **k: (swapped, data))
    monkeypatch.setattr(segmentation, "PLAUSIBLE_FRACTIONS", {name: (0.0, 1.0) for name in TISSUES})
    assert "overlaps the template priors" in segment_tissues(t1w, mask, priors).metrics["FallbackReason"]

    def fail(*args, **kwargs):
        raise RuntimeError("Atropos exited with status 1")

    monkeypatch.setattr(segmentation, "atropos_tissues", fail)
    result = segment_tissues(t1w, mask, priors)
    assert result.method == "template" and result.metrics["FallbackReason"].startswith("Atropos failed")


def test_outputs_and_sidecars_say_the_method(phantom, tmp_path):
    t1w, mask, priors, _ = phantom
    result = segment_tissues(t1w, mask, priors, method="template")
    paths = {name: tmp_path / f"sub-01_label-{name}_probseg.nii.gz" for name in TISSUES}
    save_tissue_maps(result, probseg=paths, dseg=tmp_path / "sub-01_dseg.nii.gz", source="sub-01_T1w.nii.gz")
    for name in TISSUES:
        sidecar = json.loads(sidecar_path(paths[name]).read_text())
        assert sidecar["Method"] == "template" and sidecar["Label"] == name
        assert sidecar["VolumesML"][name] > 0
    dseg = json.loads((tmp_path / "sub-01_dseg.json").read_text())
    assert dseg["Labels"] == {"1": "GM", "2": "WM", "3": "CSF", "0": "outside"}
    assert nib.load(tmp_path / "sub-01_dseg.nii.gz").get_data_dtype() == np.uint8
