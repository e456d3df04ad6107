"""BOLD realignment against known rigid motion: the stage's method beside the alternatives.

Synthetic runs from the project's BOLD generator (:func:`connex.synth.images.render_bold`: grey
matter carrying region time courses, physiological noise, drift, thermal noise, air noise), each
volume the static image moved rigidly by a known motion: a slow drift (up to about 1 mm and 1
degree) and three sudden, lasting steps of 1-3 mm and 1-2 degrees, and spin-history-like dips in
the volume of each step and the next (every other slice 15 % darker, the others 5 %, on top of
the generator's own 3 % drop). One run per orientation (RAS, LAS), 3 mm voxels.

Errors per volume against the truth (the transform from the reference volume to the volume):
translation (mm, at the centre of the brain), rotation (degrees, the angle of the residual
rotation) and the mean displacement over the brain voxels (mm); median and max over the volumes
of both runs. Time: seconds per volume of the whole call (estimation and resampling), median of
``repeats`` runs, one thread.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from scipy import ndimage

from connex.anat.coreg import rigid_matrix
from connex.functional.series import BoldSeries

#: Steps (volume index, trans_x/y/z mm, rot_x/y/z degrees) of the benchmark's motion.
STEPS = [(3, (2.0, -1.0, 1.0), (1.5, 0.0, -1.0)), (6, (-1.0, 2.5, 0.0), (0.0, 2.0, 1.0)),
         (11, (0.0, -1.5, -3.0), (-1.0, -1.0, 0.0))]


def known_motion(n_volumes: int, rng: np.random.Generator) -> np.ndarray:
    """Motion (T, 6) (mm, radians) of the benchmark: smooth drift plus :data:`STEPS`."""
    walk = np.cumsum(rng.normal(0, 0.3, (n_volumes, 6)), axis=0)
    motion = ndimage.gaussian_filter1d(walk, 2.0, axis=0)
    motion[:, 3:] = np.radians(motion[:, 3:])
    for when, translation, rotation in STEPS:
        if when < n_volumes:
            motion[when:, :3] += translation
            motion[when:, 3:] += np.radians(rotation)
    return motion - motion[0]


def synthetic_run(orientation: str, *, n_volumes: int = 16, voxel_mm: float = 3.0, seed: int = 0
                  ) -> tuple[BoldSeries, np.ndarray, np.ndarray]:
    """A synthetic run with known motion.

    Returns
    -------
    series : BoldSeries
    truth : ndarray (T, 4, 4)
        World (RAS) transforms taking positions in the static head to where volume ``t`` shows them.
    brain_mm : ndarray (N, 3)
        World positions of the brain voxels of the static head.
    """
    from connex.anat.templates import load_mni_template
    from connex.synth.atlas import make_parcellation
    from connex.synth.cohort import BRAIN_CENTRE_MM
    from connex.synth.images import BoldNoise, grid_around, random_misalignment, render_bold, sample_tissues
    from connex.synth.networks import correlated_timeseries

    rng = np.random.default_rng([seed, 17])
    template = load_mni_template(2)
    parcellation = make_parcellation(template, 8, n_networks=4, random_seed=seed)
    subject_to_mni = random_misalignment(rng, BRAIN_CENTRE_MM, rotation_deg=8, translation_mm=5, scaling=0.05)
    grid = grid_around(template.brain_mask, template.affine, subject_to_mni, voxel_mm=voxel_mm, margin_mm=10,
                       orientation=orientation)
    motion = known_motion(n_volumes, rng)
    networks = SimpleNamespace(timeseries=correlated_timeseries(np.eye(8), n_volumes, 2.0, rng))
    data = render_bold(template, parcellation, grid, subject_to_mni, networks, motion, rng, intensity_scale=1.0,
                       noise=BoldNoise(), repetition_time=2.0).astype(np.float32)
    for when, _, _ in STEPS:  # spin-history-like dips after each step, alternate slices (axis 2)
        for index in (when, when + 1):
            if index < n_volumes:
                data[:, :, 0::2, index] *= 0.85
                data[:, :, 1::2, index] *= 0.95
    in_brain = sum(sample_tissues(template, grid, subject_to_mni).values()) > 0.3
    brain_mm = np.argwhere(in_brain) @ grid.affine[:3, :3].T + grid.affine[:3, 3]
    centre_mm = brain_mm.mean(0)  # render_bold's rotation centre
    truth = np.stack([rigid_matrix(m, centre_mm) for m in motion])
    series = BoldSeries(data=data, affine=grid.affine, repetition_time=2.0, slice_timing=None, slice_axis=2,
                        source=f"synthetic {orientation}")
    return series, truth, brain_mm


def motion_errors(estimated: np.ndarray, truth: np.ndarray, brain_mm: np.ndarray, reference_index: int
                  ) -> dict[str, np.ndarray]:
    """Per-volume errors (volumes other than the reference) of ``estimated`` (T, 4, 4) reference ->
    volume world transforms against the truth taken relative to the reference volume."""
    relative = truth @ np.linalg.inv(truth[reference_index])
    points = np.c_[brain_mm, np.ones(len(brain_mm))].T
    centre = np.r_[brain_mm.mean(0), 1.0]
    others = [t for t in range(len(truth)) if t != reference_index]
    out = {"translation_mm": [], "rotation_deg": [], "displacement_mm": []}
    for t in others:
        residual = estimated[t][:3, :3] @ relative[t][:3, :3].T
        out["rotation_deg"].append(np.degrees(np.arccos(np.clip((np.trace(residual) - 1) / 2, -1, 1))))
        out["translation_mm"].append(np.linalg.norm((estimated[t] - relative[t]) @ centre))
        out["displacement_mm"].append(np.linalg.norm(((estimated[t] - relative[t]) @ points)[:3], axis=0).mean())
    return {k: np.asarray(v) for k, v in out.items()}


# ------------------------------------------------------------------------------------ methods
# Each takes (series, reference_index) and returns (T, 4, 4) world (RAS) transforms from the
# reference volume to each volume. Those that do not resample the series themselves are followed,
# inside the timed call, by the stage's resampling (cubic spline).

def _stage(series: BoldSeries, reference_index: int, params=None) -> np.ndarray:
    from connex.functional.realign import RealignParams, realign

    _, motion, centre = realign(series, reference_index=reference_index, params=params or RealignParams())
    return np.stack([rigid_matrix(m, centre) for m in motion])


def _head_mask(volume: np.ndarray, voxel_mm: np.ndarray) -> np.ndarray:
    """Where the reference has signal (as the stage samples), one voxel dilated."""
    smooth = ndimage.gaussian_filter(volume, 5.0 / 2.3548 / voxel_mm)
    return ndimage.binary_dilation(smooth > 0.1 * np.percentile(smooth, 99))


class _Ants:
    """ANTsPy images on the series' grid (LPS, as ITK) and their transforms in RAS."""

    flip = np.diag([-1.0, -1.0, 1.0, 1.0])

    def __init__(self, affine: np.ndarray):
        lps = self.flip @ affine
        self.spacing = np.sqrt((lps[:3, :3] ** 2).sum(0))
        self.direction = lps[:3, :3] / self.spacing
        self.origin = lps[:3, 3]

    def image(self, volume: np.ndarray):
        import ants

        return ants.from_numpy(np.ascontiguousarray(volume, dtype=np.float32), origin=tuple(self.origin),
                               spacing=tuple(self.spacing), direction=self.direction)

    def matrix(self, transform_file: str) -> np.ndarray:
        """RAS reference -> volume matrix of an ANTs fixed -> moving affine (parameters: 3x3 matrix,
        translation; fixed parameters: the centre)."""
        import ants

        transform = ants.read_transform(transform_file)
        parameters, centre = np.asarray(transform.parameters), np.asarray(transform.fixed_parameters)
        linear = parameters[:9].reshape(3, 3)
        matrix = np.eye(4)
        matrix[:3, :3] = linear
        matrix[:3, 3] = parameters[9:12] + centre - linear @ centre
        return self.flip @ matrix @ self.flip


def ants_motion_correction(series: BoldSeries, reference_index: int) -> np.ndarray:
    """``ants.motion_correction`` as shipped (BOLDRigid: Mattes MI, 32 bins, 20 % regular
    sampling, shrink 2x1, centre-of-mass start) to the reference volume; it resamples the
    series itself (linear)."""
    import tempfile

    import ants

    grid = _Ants(series.affine)
    direction = np.eye(4)
    direction[:3, :3] = grid.direction
    image = ants.from_numpy(np.ascontiguousarray(series.data, dtype=np.float32), origin=tuple(grid.origin) + (0.0,),
                            spacing=tuple(grid.spacing) + (series.repetition_time,), direction=direction)
    with tempfile.TemporaryDirectory() as folder:
        result = ants.motion_correction(image, fixed=grid.image(series.data[..., reference_index]),
                                        outprefix=f"{folder}/mc")
        return np.stack([grid.matrix(files[0]) for files in result["motion_parameters"]])


def ants_rigid(series: BoldSeries, reference_index: int, *, sampling: float = 0.1) -> np.ndarray:
    """``ants.registration`` Rigid per volume, tuned for BOLD: Mattes MI (32 bins) inside the
    reference's head mask, ``sampling`` regular sampling, one level (full resolution, 1 voxel
    smoothing, at most 20 iterations), each volume started from its neighbour's estimate."""
    import tempfile

    import ants

    grid = _Ants(series.affine)
    fixed = grid.image(series.data[..., reference_index])
    mask = grid.image(_head_mask(series.data[..., reference_index], grid.spacing).astype(np.float32))
    matrices = np.empty((series.n_volumes, 4, 4))
    files: dict[int, list[str]] = {}
    order = list(range(reference_index, series.n_volumes)) + list(range(reference_index - 1, -1, -1))
    with tempfile.TemporaryDirectory() as folder:
        for index in order:
            neighbour = index - 1 if index > reference_index else index + 1
            start = files[neighbour] if index != reference_index else None
            result = ants.registration(fixed, grid.image(series.data[..., index]), type_of_transform="Rigid",
                                       initial_transform=start, outprefix=f"{folder}/v{index:05d}_", mask=mask,
                                       mask_all_stages=True, aff_metric="mattes", aff_sampling=32,
                                       aff_random_sampling_rate=sampling, aff_shrink_factors=(1,),
                                       aff_smoothing_sigmas=(1,),
                                       # passed on as antsRegistration's --convergence [iterations,threshold,window]
                                       aff_iterations=("[20,1e-6,5]",))
            files[index] = result["fwdtransforms"]
            matrices[index] = grid.matrix(files[index][0])
    return matrices


def dipy_rigid(series: BoldSeries, reference_index: int, *, sampling: float = 0.2) -> np.ndarray:
    """``dipy.align.imaffine`` with ``RigidTransform3D``: Mattes MI (32 bins) on a random
    ``sampling`` of the voxels (dipy ignores a mask when sampling; every voxel is 4-5 times
    slower), two levels (factors 2, 1; sigmas 1, 0 voxels; 100 and 20 iterations), each volume
    started from its neighbour's estimate."""
    from dipy.align.imaffine import AffineRegistration, MutualInformationMetric
    from dipy.align.transforms import RigidTransform3D

    registration = AffineRegistration(metric=MutualInformationMetric(nbins=32, sampling_proportion=sampling),
                                      level_iters=[100, 20], sigmas=[1.0, 0.0], factors=[2, 1], verbosity=0)
    static = series.data[..., reference_index]
    matrices = np.empty((series.n_volumes, 4, 4))
    order = list(range(reference_index, series.n_volumes)) + list(range(reference_index - 1, -1, -1))
    np.random.seed(0)  # dipy's sampling draws from numpy's global generator
    for index in order:
        neighbour = index - 1 if index > reference_index else index + 1
        start = matrices[neighbour] if index != reference_index else np.eye(4)
        mapping = registration.optimize(static, series.data[..., index], RigidTransform3D(), None,
                                        static_grid2world=series.affine, moving_grid2world=series.affine,
                                        starting_affine=start)
        matrices[index] = mapping.affine
    return matrices


def _resample(series: BoldSeries, matrices: np.ndarray) -> np.ndarray:
    """The series resampled onto the reference (cubic spline), as the stage writes it."""
    out = np.empty_like(series.data)
    inverse = np.linalg.inv(series.affine)
    for index, matrix in enumerate(matrices):
        to_volume = inverse @ matrix @ series.affine
        out[..., index] = ndimage.affine_transform(series.data[..., index], to_volume[:3, :3], to_volume[:3, 3],
                                                   order=3, mode="nearest")
    return out


def _methods() -> list[tuple[str, object, bool]]:
    """(label, function, resample afterwards): the stage first (the reference of the ratios)."""
    from connex.functional.realign import RealignParams

    return [("stage: Gauss-Newton, every 2nd voxel", _stage, False),
            ("Gauss-Newton, all voxels", lambda s, r: _stage(s, r, RealignParams(sample_step=1)), False),
            ("ants.motion_correction (BOLDRigid)", ants_motion_correction, False),
            ("ants.registration Rigid, tuned", ants_rigid, True),
            ("dipy imaffine RigidTransform3D", dipy_rigid, True),
            ("no correction (identity)", lambda s, r: np.repeat(np.eye(4)[None], s.n_volumes, 0), False)]


def _table_row(label: str, cells: dict[str, np.ndarray], per_volume: float, reference: tuple[float, float]) -> str:
    displacement = float(np.median(cells["displacement_mm"]))
    return (f"{label:38} " + " ".join(f"{np.median(v):6.3f} {v.max():6.3f}" for v in cells.values())
            + f" {per_volume:6.3f} | {displacement / reference[0]:5.2f} {per_volume / reference[1]:5.2f}")


def benchmark_realign(repeats: int = 1, n_volumes: int = 16, real: Path | None = None) -> None:
    """Print, per method, errors against the known motion and seconds per volume; with ``real``
    (a BIDS dataset), how far each method's estimates on its sub-01's first BOLD run lie from
    the stage's (no truth there: agreement only)."""
    import os

    os.environ.setdefault("ANTS_RANDOM_SEED", "1")  # ANTs' regular sampling is jittered: reproducible figures
    runs = [synthetic_run(orientation, n_volumes=n_volumes, seed=index)
            for index, orientation in enumerate(("RAS", "LAS"))]
    steps = ", ".join(f"{np.abs(t).max():.1f} mm/{np.abs(r).max():.1f} deg at {w}"
                      for w, t, r in STEPS if w < n_volumes)
    print(f"BOLD realignment against known rigid motion: 2 synthetic runs (RAS, LAS), {runs[0][0].data.shape} "
          f"at 3 mm; drift plus steps ({steps}: volume index), spin-history dips at each step and the next "
          f"volume; reference the middle volume ({n_volumes // 2}); 1 thread, time median of {repeats} run(s)")
    print("errors per volume (both runs): translation at the brain centre, residual rotation angle, mean "
          "displacement over the brain voxels")
    print(f"{'method':38} {'trans mm':>13} {'rot deg':>13} {'displ mm':>13} {'s/vol':>6} | ratio to stage")
    print(f"{'':38}" + "    med    max" * 3 + f"{'':7} | displ  time")
    reference = None
    for label, method, resample in _methods():
        errors: dict[str, list] = {"translation_mm": [], "rotation_deg": [], "displacement_mm": []}
        seconds = []
        for _ in range(repeats):
            elapsed = 0.0
            for series, truth, brain_mm in runs:
                middle = series.n_volumes // 2
                start = time.perf_counter()
                matrices = method(series, middle)
                if resample:
                    _resample(series, matrices)
                elapsed += time.perf_counter() - start
                if not seconds:  # errors of the first repeat (every method is deterministic)
                    for key, values in motion_errors(matrices, truth, brain_mm, middle).items():
                        errors[key].append(values)
            seconds.append(elapsed / sum(s.n_volumes for s, _, _ in runs))
        cells = {key: np.concatenate(values) for key, values in errors.items()}
        per_volume = statistics.median(seconds)
        if reference is None:
            reference = (float(np.median(cells["displacement_mm"])), per_volume)
        print(_table_row(label, cells, per_volume, reference), flush=True)
    if real is not None:
        _real_agreement(real)


def _real_agreement(bids_dir: Path) -> None:
    """Each method's estimates on a real run against the stage's (mean displacement over the
    reference's head mask between the two transforms), and its seconds per volume."""
    from connex.functional.series import load_bold
    from connex.inputs.checks import read_sidecar

    path = sorted((Path(bids_dir) / "sub-01" / "func").glob("*_bold.nii.gz"))[0]
    series = load_bold(path, read_sidecar(path, bids_dir=bids_dir), min_volumes=2)
    middle = series.n_volumes // 2
    voxel_mm = np.sqrt((series.affine[:3, :3] ** 2).sum(0))
    inside = np.argwhere(_head_mask(series.data[..., middle], voxel_mm))
    points = np.c_[inside @ series.affine[:3, :3].T + series.affine[:3, 3], np.ones(len(inside))].T
    print(f"\nreal run {path.name} {series.data.shape} (no slice timing), reference volume {middle}: mean "
          f"displacement (mm, over the reference's head mask) between each method's estimate and the stage's")
    print(f"{'method':38} {'med':>6} {'max':>6}  s/vol")
    stage = None
    for label, method, _ in _methods():
        start = time.perf_counter()
        matrices = method(series, middle)
        per_volume = (time.perf_counter() - start) / series.n_volumes
        if stage is None:
            stage = matrices
            moved = [np.linalg.norm(((m - np.eye(4)) @ points)[:3], axis=0).mean() for m in matrices]
            print(f"{label:38} {'':13} {per_volume:6.3f}  (its own estimate moves the head by median "
                  f"{np.median(moved):.3f}, max {np.max(moved):.3f} mm)")
            continue
        apart = [np.linalg.norm(((m - s) @ points)[:3], axis=0).mean() for m, s in zip(matrices, stage)]
        print(f"{label:38} {np.median(apart):6.3f} {np.max(apart):6.3f} {per_volume:6.3f}")
