"""Quality-control figures a person can check at a glance."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import nibabel as nib
import numpy as np

from connex.inputs.checks import B0_THRESHOLD, read_gradients, read_sidecar
from connex.inputs.io import atomic_path

# The figures are files: a non-interactive backend, chosen before pyplot is imported.
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402


def plot_subject_inputs(*, bids_dir: str | Path, participant_id: str, t1w: str | None, dwi: str | None,
                        bold: str | None, out_png: str | Path, reason: str | None = None) -> Path:
    """One figure of a participant's raw inputs: T1w in three planes, the first DWI series
    (mean b=0, mean diffusion-weighted) and the first BOLD series (mean image, global signal).

    ``t1w``, ``dwi`` and ``bold`` are paths relative to ``bids_dir`` as in the availability
    table (``;``-separated runs; only the first is shown), or None where missing.
    """
    bids_dir = Path(bids_dir)
    figure, axes = plt.subplots(2, 4, figsize=(14, 6.5))
    for axis in axes.flat:
        axis.set_axis_off()
    figure.suptitle(f"{participant_id}: raw inputs" + (f"\n{reason}" if reason else ""), fontsize=9)

    if t1w:
        data = _canonical(bids_dir / t1w)
        for axis, plane, title in zip(axes[0, :3], range(3), ("sagittal", "coronal", "axial")):
            _show(axis, _mid_slice(data, plane), f"T1w {title}")
    else:
        _missing(axes[0, 0], "T1w")

    if dwi:
        path = bids_dir / dwi.split(";")[0]
        data = _canonical(path)
        bvals, _ = read_gradients(path, data.shape[3])
        is_b0, is_weighted = bvals <= B0_THRESHOLD, bvals > B0_THRESHOLD
        b0 = data[..., is_b0].mean(-1)
        weighted = data[..., is_weighted].mean(-1) if is_weighted.any() else np.zeros_like(b0)
        _show(axes[0, 3], _mid_slice(b0, 2), f"DWI mean b=0 ({is_b0.sum()} vols)")
        shells = ", ".join(f"{b:g}" for b in np.unique(np.round(bvals[is_weighted], -2)))
        _show(axes[1, 0], _mid_slice(weighted, 2), f"DWI mean b={shells} ({is_weighted.sum()} vols)")
    else:
        _missing(axes[0, 3], "DWI")

    if bold:
        path = bids_dir / bold.split(";")[0]
        data = _canonical(path)
        repetition_time = read_sidecar(path, bids_dir=bids_dir).get("RepetitionTime", float("nan"))
        mean = data.mean(-1)
        _show(axes[1, 1], _mid_slice(mean, 2), f"BOLD mean ({data.shape[3]} vols, TR {repetition_time} s)")
        brain = mean > np.percentile(mean, 60)
        global_signal = data[brain].mean(0)
        axis = axes[1, 2]
        axis.set_axis_on()
        axis.plot(np.arange(len(global_signal)) * repetition_time, global_signal, lw=0.8)
        axis.set_title("BOLD global signal", fontsize=8)
        axis.set_xlabel("time (s)", fontsize=7)
        axis.tick_params(labelsize=6)
        axis = axes[1, 3]
        axis.set_axis_on()
        voxels = data[brain][:: max(1, brain.sum() // 400)]
        carpet = (voxels - voxels.mean(1, keepdims=True)) / (voxels.std(1, keepdims=True) + 1e-6)
        axis.imshow(carpet, aspect="auto", cmap="gray", vmin=-2, vmax=2, interpolation="nearest")
        axis.set_title("BOLD carpet (z-scored voxels)", fontsize=8)
        axis.tick_params(labelsize=6)
    else:
        _missing(axes[1, 1], "BOLD")

    return _save(figure, out_png, dpi=70)


def _canonical(path: Path) -> np.ndarray:
    return np.asarray(nib.as_closest_canonical(nib.load(path)).dataobj, dtype=np.float32)


def _mid_slice(volume: np.ndarray, axis: int) -> np.ndarray:
    return np.take(volume, volume.shape[axis] // 2, axis=axis).T


def _show(axis, image: np.ndarray, title: str) -> None:
    axis.imshow(image, origin="lower", cmap="gray", vmin=0, vmax=np.percentile(image, 99.5) or 1)
    axis.set_title(title, fontsize=8)


def _missing(axis, what: str) -> None:
    axis.text(0.5, 0.5, f"no usable {what}", ha="center", va="center", color="red",
              transform=axis.transAxes)


def plot_registration(*, t1w: str | Path, brain_mask: str | Path, atlas_labels: str | Path, out_png: str | Path,
                      title: str) -> Path:
    """Brain-mask outline (red) and atlas region boundaries (coloured) over the T1w in three
    planes, through the centre of the brain mask."""
    from scipy import ndimage

    anatomy = _canonical(Path(t1w))
    mask = _canonical(Path(brain_mask)) > 0
    labels = _canonical(Path(atlas_labels)).astype(int)
    centre = np.round(ndimage.center_of_mass(mask)).astype(int) if mask.any() else np.array(mask.shape) // 2
    boundaries = labels * (ndimage.grey_dilation(labels, size=3) != ndimage.grey_erosion(labels, size=3))
    figure, axes = plt.subplots(1, 3, figsize=(13, 4.6))
    for axis, plane, name in zip(axes, range(3), ("sagittal", "coronal", "axial")):
        image = np.take(anatomy, centre[plane], axis=plane).T
        axis.imshow(image, origin="lower", cmap="gray", vmin=0, vmax=np.percentile(anatomy, 99.5))
        edges = np.take(boundaries, centre[plane], axis=plane).T.astype(float)
        axis.imshow(np.ma.masked_equal(edges, 0), origin="lower", cmap="tab20", alpha=0.9,
                    interpolation="nearest")
        axis.contour(np.take(mask, centre[plane], axis=plane).T, [0.5], colors="red", linewidths=1.2)
        axis.set_title(name, fontsize=9)
        axis.set_axis_off()
    return _save(figure, out_png, title=title)


def plot_structural_connectome(fa: str | Path, shown: list[np.ndarray], count: np.ndarray, out_png: str | Path,
                               *, title: str) -> Path:
    """FA map (axial and sagittal maximum-intensity slabs) with streamlines (world mm (n_i, 3):
    a sample of the tractogram) projected on it, and the log streamline-count matrix."""
    image = nib.as_closest_canonical(nib.load(fa))
    data = np.asarray(image.dataobj, dtype=float)
    to_voxel = np.linalg.inv(image.affine)
    voxel_lines = [line @ to_voxel[:3, :3].T + to_voxel[:3, 3] for line in shown]
    directions = [np.abs(voxels[-1] - voxels[0]) + 1e-6 for voxels in voxel_lines]
    colours = [direction / direction.max() for direction in directions]  # RGB: the end-to-end direction
    figure, axes = plt.subplots(1, 3, figsize=(15, 5))
    for axis, (plane, (u, v)) in zip(axes[:2], ((2, (0, 1)), (0, (1, 2)))):
        axis.imshow(data.max(axis=plane).T, origin="lower", cmap="gray", vmin=0, vmax=0.8)
        # one artist for all the streamlines (a line each held 10 KB or more: memory and time)
        axis.add_collection(LineCollection([voxels[:, [u, v]] for voxels in voxel_lines], colors=colours,
                                           linewidths=0.3, alpha=0.5))
        axis.set_title(("axial" if plane == 2 else "sagittal") + f": FA and {len(shown)} streamlines", fontsize=9)
        axis.set_axis_off()
    shown_matrix = axes[2].imshow(np.log1p(count), cmap="viridis", interpolation="nearest")
    axes[2].set_title("log(1 + streamline count), atlas order", fontsize=9)
    figure.colorbar(shown_matrix, ax=axes[2], fraction=0.046)
    return _save(figure, out_png, title=title)


def plot_functional_connectome(fd: np.ndarray | None, fd_threshold: float | None, keep: np.ndarray, bold: np.ndarray,
                               labels: np.ndarray, brain: np.ndarray, matrix: np.ndarray, out_png: str | Path, *,
                               title: str, max_voxels: int = 3000, seed: int = 0) -> Path:
    """Framewise displacement with the threshold and the censored volumes, a carpet plot (a sample
    of brain voxels, z-scored in time, atlas voxels first and ordered by region), the mean BOLD
    with the brain mask and atlas brought from the T1w (the coregistration check), and the
    connectivity matrix.

    ``bold`` (X, Y, Z, T), ``labels`` atlas positions on its grid, ``keep`` (T,) bool.
    """
    figure = plt.figure(figsize=(19, 6))
    grid = figure.add_gridspec(2, 3, width_ratios=(2.2, 1, 1), height_ratios=(1, 2.5))
    trace = figure.add_subplot(grid[0, 0])
    volumes = np.arange(len(keep))
    if fd is not None:
        trace.plot(volumes, np.nan_to_num(fd), lw=0.8, color="k")
        if fd_threshold is not None:
            trace.axhline(fd_threshold, color="r", lw=0.8, ls="--", label=f"threshold {fd_threshold} mm")
            trace.legend(fontsize=8, loc="upper right")
    for index in np.flatnonzero(~keep):
        trace.axvspan(index - 0.5, index + 0.5, color="r", alpha=0.25, lw=0)
    trace.set_xlim(-0.5, len(keep) - 0.5)
    trace.set_ylabel("FD (mm)", fontsize=9)
    trace.set_title(f"framewise displacement; {int((~keep).sum())} censored volume(s) shaded", fontsize=9)
    carpet = figure.add_subplot(grid[1, 0], sharex=trace)
    rng = np.random.default_rng(seed)
    in_atlas = np.argwhere(brain & (labels > 0))
    in_atlas = in_atlas[np.argsort(labels[tuple(in_atlas.T)], kind="stable")]
    other = np.argwhere(brain & (labels == 0))
    n_atlas = min(len(in_atlas), max_voxels * 2 // 3)
    picked_atlas = in_atlas[np.sort(rng.choice(len(in_atlas), n_atlas, replace=False))] if n_atlas else in_atlas[:0]
    picked_other = other[rng.choice(len(other), min(len(other), max_voxels - n_atlas), replace=False)]
    series = bold[tuple(np.vstack([picked_atlas, picked_other]).T)].astype(float)
    series = (series - series.mean(1, keepdims=True)) / (series.std(1, keepdims=True) + 1e-6)
    carpet.imshow(series, aspect="auto", cmap="gray", vmin=-2, vmax=2, interpolation="nearest",
                  extent=(-0.5, len(keep) - 0.5, len(series), 0))
    carpet.axhline(n_atlas, color="c", lw=0.8)
    carpet.set_xlabel("volume", fontsize=9)
    carpet.set_ylabel("voxels (atlas regions, then other brain)", fontsize=9)
    overlay = figure.add_subplot(grid[:, 1])
    mean = bold.mean(axis=3)
    middle = int(np.median(np.argwhere(brain)[:, 2])) if brain.any() else mean.shape[2] // 2
    overlay.imshow(mean[:, :, middle].T, origin="lower", cmap="gray")
    overlay.contour(brain[:, :, middle].T.astype(float), levels=[0.5], colors="y", linewidths=0.8)
    overlay.contour(labels[:, :, middle].T, levels=np.arange(0.5, labels.max() + 1), colors="c", linewidths=0.3)
    overlay.set_title("mean BOLD (voxel axes): brain mask (yellow), atlas (cyan)", fontsize=9)
    overlay.set_axis_off()
    shown = figure.add_subplot(grid[:, 2])
    limit = max(float(np.abs(matrix).max()), 1e-6)
    image = shown.imshow(matrix, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    shown.set_title("functional connectivity, atlas order", fontsize=9)
    figure.colorbar(image, ax=shown, fraction=0.046)
    return _save(figure, out_png, title=title)


def _save(figure, out_png: str | Path, *, title: str | None = None, dpi: int = 80) -> Path:
    """Title, lay out and write a figure as PNG (atomically), then free it."""
    if title is not None:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    with atomic_path(out_png) as tmp:
        figure.savefig(tmp, dpi=dpi, format="png")
    plt.close(figure)
    return Path(out_png)
