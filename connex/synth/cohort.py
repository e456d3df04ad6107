"""Write a synthetic cohort as a BIDS dataset, with its ground truth as a derivative.

Layout of ``OUT`` (a valid BIDS raw dataset)::

    dataset_description.json, participants.tsv, participants.json, README
    sub-XX/anat/sub-XX_T1w.nii.gz (+ .json)
    sub-XX/dwi/sub-XX_dwi.nii.gz + .bval + .bvec + .json
    sub-XX/func/sub-XX_task-rest_bold.nii.gz + .json
    derivatives/groundtruth/
        atlas-synth_space-MNI152NLin2009aSym_res-2_dseg.nii.gz + atlas-synth_dseg.tsv
        group/effect_edges.tsv
        sub-XX/sub-XX_atlas-synth_meas-bundlestrength_desc-true_relmat.tsv   (true SC)
        sub-XX/sub-XX_task-rest_atlas-synth_meas-correlation_desc-true_relmat.tsv (true FC)
        sub-XX/sub-XX_task-rest_atlas-synth_desc-true_timeseries.tsv
        sub-XX/sub-XX_task-rest_desc-truemotion_timeseries.tsv
        sub-XX/sub-XX_from-T1w_to-MNI152NLin2009aSym_mode-world_xfm.txt

The whole dataset is written to a temporary folder beside ``OUT`` and renamed into place
at the end, so ``OUT`` appears whole or not at all.
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pandas as pd
from dipy.core.gradients import GradientTable
from scipy import ndimage

from connex import __version__
from connex.anat.templates import MNI_SPACE, MNITemplate, head_model, load_mni_template
from connex.inputs.io import save_nifti, staged_folder, write_array, write_json, write_text, write_tsv
from connex.inputs.paths import bids_path
from connex.synth.atlas import Parcellation, make_parcellation
from connex.synth.diffusion import bundle_curves, make_gradient_table, render_dwi
from connex.synth.images import BoldNoise, grid_around, motion_parameters, random_misalignment, render_bold, render_t1w
from connex.synth.networks import (
    GroupNetworks,
    correlated_timeseries,
    make_group_networks,
    make_subject_networks,
)
from connex.synth.tissues import LABELS, individual_labels, render_phantom

log = logging.getLogger(__name__)

ATLAS_NAME = "synth"
TASK = "rest"
DWI_REPETITION_TIME = 8.0
#: Centre of the per-subject head rotation (MNI mm; about the middle of the brain).
BRAIN_CENTRE_MM = np.array([0.0, -18.0, 18.0])


@dataclass
class SynthConfig:
    """Every parameter of the synthetic cohort (the defaults make the demo cohort).

    Cohort: ``n_subjects``, ``seed``, ``n_sites``, ``patient_fraction``.
    Networks: ``n_regions`` (even), ``n_networks``, ``edge_density``, ``sc_effect`` (fraction by which SZ
    bundles on ``n_sc_effect_edges`` are weaker), ``fc_effect`` (variance of the shared factor
    SZ lacks on ``n_fc_effect_edges`` region pairs).
    Sites: ``site_intensity_sd`` (spread of each site's intensity scale), ``site_noise_sd``
    (spread of each site's noise level, as a fraction).
    Images: voxel sizes, ``misalign_*`` (per-subject head position), DWI shells, SNR, BOLD
    volumes and TR, ``motion_mm`` (typical head jump), ``patient_motion_factor``.
    Realism (all off by default, which keeps the demo cohort's images; :func:`hard_config` turns
    them on): ``individual_anatomy`` gives each participant its own tissues (the template's
    perturbed, :func:`connex.synth.tissues.individual_labels`) and renders the T1w from them, so a
    segmentation of the image beats the template priors; ``background_fibre_fraction`` fills the
    white matter outside the bundles with fibres that join no regions (realistic FA, false paths
    for tractography); ``bold_noise.spin_history`` adds slice-wise dips after head jumps.
    Sessions: ``n_sessions`` above 1 writes each participant's scans under ``ses-1``, ``ses-2``...:
    the same brain and networks scanned again (a new head position, head motion and noise per
    session); session 1 is the image set a one-session cohort of the same seed has.
    """

    n_subjects: int = 8
    seed: int = 0
    n_sites: int = 2
    patient_fraction: float = 0.5
    n_regions: int = 48
    n_networks: int = 6
    edge_density: float = 0.1
    sc_effect: float = 0.5
    n_sc_effect_edges: int = 8
    fc_effect: float = 0.6
    n_fc_effect_edges: int = 8
    site_intensity_sd: float = 0.1
    site_noise_sd: float = 0.2
    t1w_voxel_mm: float = 2.0
    dwi_voxel_mm: float = 2.5
    bold_voxel_mm: float = 4.0
    misalign_rotation_deg: float = 8.0
    misalign_translation_mm: float = 10.0
    misalign_scaling: float = 0.06
    n_b0: int = 3
    n_directions: int = 30
    bvalues: tuple[float, ...] = (1000.0,)
    dwi_snr: float = 25.0
    n_volumes: int = 300
    repetition_time: float = 2.0
    motion_mm: float = 0.6
    patient_motion_factor: float = 1.0
    bold_noise: BoldNoise = field(default_factory=BoldNoise)
    n_sessions: int = 1
    individual_anatomy: bool = False
    background_fibre_fraction: float = 0.0

    def __post_init__(self):
        if self.n_subjects < 1:
            raise ValueError(f"'n_subjects' must be at least 1; {self.n_subjects} was provided.")
        if self.n_sessions < 1:
            raise ValueError(f"'n_sessions' must be at least 1; {self.n_sessions} was provided.")
        if self.n_sites < 1:
            raise ValueError(f"'n_sites' must be at least 1; {self.n_sites} was provided.")
        if not 0 <= self.patient_fraction <= 1:
            raise ValueError(f"'patient_fraction' must be in [0, 1]; {self.patient_fraction} was provided.")
        if self.n_volumes <= self.n_regions:
            raise ValueError(f"'n_volumes' ({self.n_volumes}) must exceed 'n_regions' ({self.n_regions}).")
        if self.n_fc_effect_edges > self.n_regions // 2:
            raise ValueError(f"'n_fc_effect_edges' ({self.n_fc_effect_edges}) must be at most half of "
                             f"'n_regions' ({self.n_regions}): FC effect edges share no region.")
        self.bvalues = tuple(float(b) for b in self.bvalues)


def hard_config(**changes) -> SynthConfig:
    """A cohort closer to real scans than the demo's (:class:`SynthConfig`, "Realism"): each
    subject's own anatomy, white matter full of fibres (FA about 0.3-0.5 there), larger head motion
    with more jumps, spin-history dips and a lower SNR; ``changes`` override any field."""
    settings = {"individual_anatomy": True, "background_fibre_fraction": 0.45, "motion_mm": 1.0, "dwi_snr": 20.0,
                "bold_noise": BoldNoise(spin_history=0.04, thermal_snr=70.0)}
    return SynthConfig(**(settings | changes))


def make_participants(config: SynthConfig) -> pd.DataFrame:
    """participants.tsv: balanced diagnosis and site, random age and sex (seeded)."""
    rng = np.random.default_rng([config.seed, 1])
    n = config.n_subjects
    width = max(2, len(str(n)))
    n_patients = int(round(config.patient_fraction * n))
    diagnosis = np.array(["SZ"] * n_patients + ["HC"] * (n - n_patients))
    rng.shuffle(diagnosis)
    return pd.DataFrame({
        "participant_id": [f"sub-{i:0{width}d}" for i in range(1, n + 1)],
        "diagnosis": diagnosis,
        "site": [f"S{(i % config.n_sites) + 1}" for i in range(n)],
        "age": rng.uniform(18, 60, n).round(1),
        "sex": rng.choice(["M", "F"], n),
    })


def site_effects(config: SynthConfig) -> pd.DataFrame:
    """Per-site intensity scale and noise factor (seeded)."""
    rng = np.random.default_rng([config.seed, 2])
    sites = [f"S{k + 1}" for k in range(config.n_sites)]
    return pd.DataFrame({
        "site": sites,
        "intensity_scale": np.clip(rng.normal(1.0, config.site_intensity_sd, len(sites)), 0.5, 1.5),
        "noise_factor": np.clip(rng.normal(1.0, config.site_noise_sd, len(sites)), 0.5, 2.0),
    }).set_index("site")


def make_ground_truth(config: SynthConfig) -> tuple[Parcellation, GroupNetworks]:
    """The cohort's atlas and true group networks (seeded)."""
    template = load_mni_template(2)
    # Small atlases (tests) cannot hold more networks than regions per hemisphere.
    parcellation = make_parcellation(template, config.n_regions, random_seed=config.seed,
                                     n_networks=min(config.n_networks, config.n_regions // 2))
    group = make_group_networks(parcellation, np.random.default_rng([config.seed, 3]),
                                edge_density=config.edge_density, sc_effect=config.sc_effect,
                                n_sc_effect=config.n_sc_effect_edges, fc_effect=config.fc_effect,
                                n_fc_effect=config.n_fc_effect_edges)
    return parcellation, group


def generate_cohort(out_dir: str | Path, config: SynthConfig | None = None, *,
                    progress: bool = False, n_jobs: int = 1) -> Path:
    """Write a synthetic BIDS cohort with images and ground truth to ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Must not exist (or be empty): the generator never writes into an existing dataset.
    config : SynthConfig, optional
    progress : bool
        Show a progress bar (command line).
    n_jobs : int
        Participants rendered at once, each in its own process. Every participant has its own
        random generator (seed, participant), so any ``n_jobs`` writes the same images.
    """
    config = config or SynthConfig()
    out_dir = _check_new_folder(out_dir)
    template = load_mni_template(2)
    parcellation, group = make_ground_truth(config)
    participants = make_participants(config)
    sites = site_effects(config)
    scene = _Scene(template=template, head=head_model(template), parcellation=parcellation,
                   group=group, curves=bundle_curves(parcellation, group, template),
                   gtab=make_gradient_table(np.random.default_rng([config.seed, 4]), n_b0=config.n_b0,
                                            n_directions=config.n_directions, bvalues=config.bvalues))
    with staged_folder(out_dir) as stage:
        truth = stage / "derivatives" / "groundtruth"
        _write_dataset_files(stage, truth, config, participants, parcellation, group)
        rows = [SimpleNamespace(**row) for row in participants.to_dict("records")]
        render = partial(_render_participant, stage, truth, sites, scene, config)
        with ProcessPoolExecutor(n_jobs) if n_jobs > 1 else nullcontext() as pool:
            done = pool.map(render, rows) if pool is not None else map(render, rows)
            if progress:
                from tqdm import tqdm
                done = tqdm(done, total=len(rows), desc="synthetic subjects", unit="subject")
            for _ in done:
                pass
    log.info("Wrote %d synthetic subjects to %s", config.n_subjects, out_dir)
    return out_dir


@dataclass(frozen=True)
class _Scene:
    """What every subject's images are rendered from."""

    template: MNITemplate
    head: np.ndarray
    parcellation: Parcellation
    group: GroupNetworks
    curves: list[np.ndarray]
    gtab: GradientTable
    #: The subject's tissues: the template's (None), or an individual's labels on the template grid.
    anatomy: IndividualAnatomy | None = None


@dataclass(frozen=True)
class IndividualAnatomy:
    """One subject's own brain on the template grid: hard ``labels`` (connex.synth.tissues.LABELS)
    and ``tissues``, the template with its GM/WM/CSF maps replaced by those labels' fractions."""

    labels: np.ndarray
    tissues: MNITemplate


def individual_anatomy(template: MNITemplate, rng: np.random.Generator) -> IndividualAnatomy:
    """A made-up individual's tissues around the template's (:func:`individual_labels`)."""
    labels = individual_labels(template, rng)
    fractions = {name: ndimage.gaussian_filter((labels == value).astype(np.float32), 0.5)
                 for name, value in LABELS.items()}
    return IndividualAnatomy(labels=labels, tissues=replace(template, **fractions))


def _render_participant(stage: Path, truth: Path, sites: pd.DataFrame, scene: _Scene, config: SynthConfig,
                        row: SimpleNamespace) -> None:
    _write_subject_images(stage, truth, row, sites.loc[row.site], scene, config)


def _write_subject_images(stage: Path, truth: Path, row, site: pd.Series, scene: _Scene,
                          config: SynthConfig) -> None:
    """Render and write one participant's T1w, DWI and BOLD (with sidecars) and ground truth,
    once per session."""
    subject = row.participant_id.removeprefix("sub-")
    rng = np.random.default_rng([config.seed, 100, int(subject)])
    is_patient = row.diagnosis == "SZ"
    networks = make_subject_networks(scene.group, is_patient, rng, n_volumes=config.n_volumes,
                                     repetition_time=config.repetition_time)
    if config.individual_anatomy:  # this subject's brain, scanned in every session
        scene = replace(scene, anatomy=individual_anatomy(scene.template, rng))
    if config.n_sessions == 1:
        subject_to_mni, motion = _write_session_images(stage, subject, None, rng, networks, is_patient, site,
                                                       scene, config)
        _write_subject_truth(truth, subject, scene.parcellation, networks, subject_to_mni, motion)
        return
    _write_subject_truth(truth, subject, scene.parcellation, networks, None, None)
    for number in range(1, config.n_sessions + 1):
        # session 1 continues the subject's generator, as a one-session cohort does
        session_rng = rng if number == 1 else np.random.default_rng([config.seed, 100, int(subject), number])
        subject_to_mni, motion = _write_session_images(stage, subject, str(number), session_rng, networks,
                                                       is_patient, site, scene, config)
        _write_session_truth(truth, subject, str(number), subject_to_mni, motion)


def _write_session_images(stage: Path, subject: str, session: str | None, rng: np.random.Generator, networks,
                          is_patient: bool, site: pd.Series, scene: _Scene, config: SynthConfig
                          ) -> tuple[np.ndarray, np.ndarray]:
    """One session's T1w, DWI and BOLD of one participant; returns the head pose (subject -> MNI
    mm, (4, 4)) and the BOLD head motion ((n_volumes, 6))."""
    template, group = scene.template, scene.group

    def path(datatype: str, suffix: str, extension: str, **entities) -> Path:
        return bids_path(stage, subject=subject, session=session, datatype=datatype, suffix=suffix,
                         extension=extension, **entities)

    subject_to_mni = random_misalignment(
        rng, BRAIN_CENTRE_MM, rotation_deg=config.misalign_rotation_deg,
        translation_mm=config.misalign_translation_mm, scaling=config.misalign_scaling)
    scanner = {"Modality": "MR", "MagneticFieldStrength": 3, "Manufacturer": "ConneX synth"}

    t1_grid = grid_around(scene.head > 0.02, template.affine, subject_to_mni,
                          voxel_mm=config.t1w_voxel_mm, margin_mm=4, orientation="RAS")
    if scene.anatomy is None:
        t1w = render_t1w(scene.head, template, t1_grid, subject_to_mni, rng,
                         intensity_scale=site.intensity_scale, noise_sd=0.02 * site.noise_factor)
    else:
        t1w = np.round(render_phantom(template, scene.anatomy.labels, t1_grid, subject_to_mni, rng,
                                      noise_sd=0.02 * site.noise_factor, intensity_scale=site.intensity_scale
                                      ).t1w).astype(np.int16)
    tissues = template if scene.anatomy is None else scene.anatomy.tissues
    _save(t1w, t1_grid.affine, path("anat", "T1w", ".nii.gz"), zooms=(config.t1w_voxel_mm,) * 3)
    write_json({**scanner, "RepetitionTime": 2.3, "EchoTime": 0.003, "InversionTime": 0.9, "FlipAngle": 8},
               path("anat", "T1w", ".json"))

    dwi_grid = grid_around(template.brain_mask, template.affine, subject_to_mni,
                           voxel_mm=config.dwi_voxel_mm, margin_mm=8, orientation="LAS")
    strengths = networks.sc[group.sc_edges[:, 0], group.sc_edges[:, 1]]
    dwi = render_dwi(tissues, dwi_grid, subject_to_mni, scene.curves, strengths, scene.gtab, rng,
                     intensity_scale=site.intensity_scale, snr=config.dwi_snr / site.noise_factor,
                     background_fibre_fraction=config.background_fibre_fraction)
    _save(dwi, dwi_grid.affine, path("dwi", "dwi", ".nii.gz"),
          zooms=(config.dwi_voxel_mm,) * 3 + (DWI_REPETITION_TIME,))
    write_text(" ".join(f"{b:g}" for b in scene.gtab.bvals) + "\n", path("dwi", "dwi", ".bval"))
    write_text("\n".join(" ".join(f"{v:.6f}" for v in axis) for axis in scene.gtab.bvecs.T) + "\n",
               path("dwi", "dwi", ".bvec"))
    write_json({**scanner, "RepetitionTime": DWI_REPETITION_TIME, "EchoTime": 0.08,
                "PhaseEncodingDirection": "j-", "TotalReadoutTime": 0.05}, path("dwi", "dwi", ".json"))

    bold_grid = grid_around(template.brain_mask, template.affine, subject_to_mni,
                            voxel_mm=config.bold_voxel_mm, margin_mm=8, orientation="LAS")
    motion_scale = config.motion_mm * rng.lognormal(0, 0.3)
    if is_patient:
        motion_scale *= config.patient_motion_factor
    motion = motion_parameters(rng, config.n_volumes, scale_mm=motion_scale)
    bold_noise = replace(config.bold_noise, thermal_snr=config.bold_noise.thermal_snr / site.noise_factor)
    bold = render_bold(tissues, scene.parcellation, bold_grid, subject_to_mni, networks, motion, rng,
                       intensity_scale=site.intensity_scale, noise=bold_noise,
                       repetition_time=config.repetition_time)
    _save(bold, bold_grid.affine, path("func", "bold", ".nii.gz", task=TASK),
          zooms=(config.bold_voxel_mm,) * 3 + (config.repetition_time,))
    write_json({**scanner, "TaskName": TASK, "RepetitionTime": config.repetition_time, "EchoTime": 0.03,
                "PhaseEncodingDirection": "j-"}, path("func", "bold", ".json", task=TASK))
    return subject_to_mni, motion


def generate_connectomes(out_dir: str | Path, config: SynthConfig | None = None, *,
                         streamlines_per_unit: float = 300.0, fc_noise: float = 0.6) -> Path:
    """Write only connectome matrices, in the layout of the pipeline's own outputs.

    For model development at scale: each subject gets a count-weighted SC
    (``sub-XX/dwi/sub-XX_atlas-synth_meas-count_relmat.tsv``: Poisson counts around the true
    bundle strengths, plus sparse short-range false positives) and a correlation FC
    (``sub-XX/func/sub-XX_task-rest_atlas-synth_meas-correlation_relmat.tsv``: the sample
    correlation of the true time courses plus measurement noise of sd ``fc_noise`` scaled
    by the site's noise factor), with participants.tsv and the ground truth beside them.
    """
    config = config or SynthConfig()
    out_dir = _check_new_folder(out_dir)
    parcellation, group = make_ground_truth(config)
    participants = make_participants(config)
    sites = site_effects(config)
    names = parcellation.table["name"].tolist()
    distance = np.linalg.norm(parcellation.centroids[:, None] - parcellation.centroids[None], axis=-1)
    false_rate = 3.0 * np.exp(-distance / 20.0)
    np.fill_diagonal(false_rate, 0.0)

    with staged_folder(out_dir) as stage:
        truth = stage / "derivatives" / "groundtruth"
        _write_dataset_files(stage, truth, config, participants, parcellation, group,
                             dataset_type="derivative")
        for row in participants.itertuples():
            subject = row.participant_id.removeprefix("sub-")
            rng = np.random.default_rng([config.seed, 100, int(subject)])
            site = sites.loc[row.site]
            networks = make_subject_networks(group, row.diagnosis == "SZ", rng,
                                             n_volumes=config.n_volumes,
                                             repetition_time=config.repetition_time)
            rate = np.triu(networks.sc * streamlines_per_unit * rng.lognormal(0, 0.2) + false_rate, 1)
            counts = np.triu(rng.poisson(rate), 1)
            counts = counts + counts.T
            noise = correlated_timeseries(np.eye(len(names)), config.n_volumes, config.repetition_time, rng)
            observed = networks.timeseries + fc_noise * site.noise_factor * noise
            fc = np.corrcoef(observed.T)
            np.fill_diagonal(fc, 1.0)
            _write_matrix(counts.astype(float), names,
                          bids_path(stage, subject=subject, datatype="dwi", suffix="relmat", extension=".tsv",
                                    atlas=ATLAS_NAME, meas="count"))
            _write_matrix(fc, names, bids_path(stage, subject=subject, datatype="func", suffix="relmat",
                                               extension=".tsv", task=TASK, atlas=ATLAS_NAME, meas="correlation"))
            _write_subject_truth(truth, subject, parcellation, networks, None, None)
    log.info("Wrote connectomes of %d synthetic subjects to %s", config.n_subjects, out_dir)
    return out_dir


# ---------------------------------------------------------------------------------- helpers

def _write_dataset_files(stage: Path, truth: Path, config: SynthConfig, participants: pd.DataFrame,
                         parcellation: Parcellation, group: GroupNetworks, *,
                         dataset_type: str = "raw") -> None:
    generated_by = [{"Name": "connex synth", "Version": __version__,
                     "Description": "Synthetic cohort with ground truth"}]
    write_json({"Name": "ConneX synthetic cohort", "BIDSVersion": "1.9.0", "DatasetType": dataset_type,
                "GeneratedBy": generated_by, "License": "CC0"}, stage / "dataset_description.json")
    write_tsv(participants, stage / "participants.tsv")
    write_json({
        "diagnosis": {"Description": "Diagnostic group",
                      "Levels": {"HC": "healthy control", "SZ": "schizophrenia"}},
        "site": {"Description": "Acquisition site (intensity and noise differ by site)"},
        "age": {"Description": "Age", "Units": "year"},
        "sex": {"Description": "Sex", "Levels": {"M": "male", "F": "female"}},
    }, stage / "participants.json")
    write_text("Synthetic cohort made by `connex synth`; ground truth in derivatives/groundtruth.\n"
               f"Parameters: {asdict(config)}\n", stage / "README")
    write_json({"Name": "ConneX synthetic ground truth", "BIDSVersion": "1.9.0",
                "DatasetType": "derivative", "GeneratedBy": generated_by,
                "SynthConfig": asdict(config)}, truth / "dataset_description.json")
    labels = nib.Nifti1Image(parcellation.labels, parcellation.affine)
    labels.header.set_xyzt_units("mm")
    save_nifti(labels, truth / f"atlas-{ATLAS_NAME}_space-{MNI_SPACE}_res-2_dseg.nii.gz")
    write_tsv(parcellation.table, truth / f"atlas-{ATLAS_NAME}_dseg.tsv")
    write_tsv(group.effect_table, truth / "group" / "effect_edges.tsv")
    sc_table = pd.DataFrame({"region_i": group.sc_edges[:, 0] + 1, "region_j": group.sc_edges[:, 1] + 1,
                             "strength": group.sc_strength, "sz_effect": group.sc_effect})
    write_tsv(sc_table, truth / "group" / "bundles.tsv")


def _write_subject_truth(truth: Path, subject: str, parcellation: Parcellation, networks,
                         subject_to_mni: np.ndarray | None, motion: np.ndarray | None) -> None:
    names = parcellation.table["name"].tolist()
    _write_matrix(networks.sc, names, bids_path(truth, subject=subject, datatype=None, suffix="relmat",
                                                extension=".tsv", atlas=ATLAS_NAME, meas="bundlestrength", desc="true"))
    _write_matrix(networks.fc, names, bids_path(truth, subject=subject, datatype=None, suffix="relmat",
                                                extension=".tsv", task=TASK, atlas=ATLAS_NAME, meas="correlation",
                                                desc="true"))
    write_array(networks.timeseries, names,
                bids_path(truth, subject=subject, datatype=None, suffix="timeseries", extension=".tsv", task=TASK,
                          atlas=ATLAS_NAME, desc="true"))
    if subject_to_mni is not None:
        _write_session_truth(truth, subject, None, subject_to_mni, motion)


def _write_session_truth(truth: Path, subject: str, session: str | None, subject_to_mni: np.ndarray,
                         motion: np.ndarray | None) -> None:
    """The true head pose (T1w world -> MNI) and BOLD motion of one session."""
    write_text("\n".join(" ".join(f"{v:.8f}" for v in row) for row in subject_to_mni) + "\n",
               bids_path(truth, subject=subject, session=session, datatype=None, suffix="xfm", extension=".txt",
                         from_="T1w", to=MNI_SPACE, mode="world"))
    if motion is not None:
        columns = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
        write_tsv(pd.DataFrame(motion, columns=columns),
                  bids_path(truth, subject=subject, session=session, datatype=None, suffix="timeseries",
                            extension=".tsv", task=TASK, desc="truemotion"))


def _write_matrix(matrix: np.ndarray, names: list[str], target: Path) -> None:
    """A connectivity matrix as TSV with a header row of region names (atlas order)."""
    write_array(matrix, names, target)


def _save(data: np.ndarray, affine: np.ndarray, target: Path, *, zooms: tuple[float, ...]) -> None:
    image = nib.Nifti1Image(data, affine)
    image.header.set_zooms(zooms)
    image.header.set_xyzt_units("mm", "sec")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    save_nifti(image, target)


def _check_new_folder(out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir} already exists and is not empty; the synthetic cohort is "
                              "only written to a new folder (it never writes into an existing dataset).")
    return out_dir
