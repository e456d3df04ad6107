"""Benchmarks of single stages: time (medians over repeats) and accuracy against ground truth."""

from __future__ import annotations

import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from connex.benchmarks.references import ants_reference, mrtrix_reference
from connex.registry import CONFOUND_STRATEGIES, FC_MEASURES, TISSUES
from connex.synth.accuracy import fc_accuracy, registration_accuracy, sc_accuracy, true_fc, upper_correlation


def _time(function, repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            function(Path(folder) / "out")
            seconds.append(time.perf_counter() - start)
    return seconds


def benchmark_synth(repeats: int = 3, subjects: int = 8, connectome_subjects: int = 300) -> None:
    """Time the demo-size image cohort and a large connectomes-only cohort."""
    from connex.synth import SynthConfig, generate_cohort, generate_connectomes

    config = SynthConfig(n_subjects=subjects)
    _time(lambda out: generate_connectomes(out, SynthConfig(n_subjects=2)), 1)  # warm caches/imports
    images = _time(lambda out: generate_cohort(out, config), repeats)
    matrices_config = SynthConfig(n_subjects=connectome_subjects, n_regions=100)
    matrices = _time(lambda out: generate_connectomes(out, matrices_config), repeats)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    median = statistics.median(images)
    print(f"synthetic cohort with images, {subjects} subjects (demo size), {repeats} runs: "
          f"median {median:.1f} s (min {min(images):.1f}, max {max(images):.1f}); "
          f"{median / subjects:.2f} s per subject")
    print(f"connectomes only, {connectome_subjects} subjects x 100 regions, {repeats} runs: "
          f"median {statistics.median(matrices):.1f} s "
          f"({connectome_subjects / statistics.median(matrices):.0f} subjects/s)")
    print(f"ratio (images per subject / matrices per subject): "
          f"{(median / subjects) / (statistics.median(matrices) / connectome_subjects):.0f}")
    print(f"peak resident memory of this process: {peak_mb:.0f} MB")


def benchmark_anat(bids_dir: Path, subjects: list[str], repeats: int = 3, real: Path | None = None) -> None:
    """Time and accuracy of the anatomy stage (dipy) on synthetic subjects against their ground
    truth, beside an ANTsPy reference with the same strategy, and its time on a real T1w."""
    from connex.anat.atlases import load_synth_atlas
    from connex.anat.preprocess import atlas_to_t1w, load_t1w, register_t1w
    from connex.anat.templates import MNI_SPACE
    from connex.inputs.paths import bids_path

    truth_dir = bids_dir / "derivatives" / "groundtruth"
    atlas = load_synth_atlas(truth_dir)
    print(f"anatomy stage, 1 thread, median of {repeats} runs per subject (ANTs reference: 1 run)")
    print(f"{'subject':10} {'tool':6} {'n4 s':>6} {'affine s':>9} {'syn s':>7} {'total s':>8} "
          f"{'mean err mm':>12} {'p95 err mm':>11} {'median Dice':>12}")
    rows = []
    for subject in subjects:
        t1w_path = bids_path(bids_dir, subject=subject, datatype="anat", suffix="T1w", extension=".nii.gz")
        truth = np.loadtxt(bids_path(truth_dir, subject=subject, datatype=None, suffix="xfm", extension=".txt",
                                     from_="T1w", to=MNI_SPACE, mode="world"))
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = register_t1w(load_t1w(t1w_path))
            runs.append((time.perf_counter() - start, result))
        total, result = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
        labels, _ = atlas_to_t1w(atlas, result.brain_mask, result.registration)
        accuracy = registration_accuracy(t1w_path, truth, atlas, result.registration.mni_points_to_t1w,
                                         np.asarray(labels.dataobj))
        m = result.metrics
        print(f"sub-{subject:6} {'dipy':6} {m['n4_seconds']:6.1f} {m['affine_seconds']:9.1f} {m['syn_seconds']:7.1f} "
              f"{total:8.1f} {accuracy['mean_error_mm']:12.2f} {accuracy['p95_error_mm']:11.2f} "
              f"{accuracy['median_dice']:12.3f}")
        start = time.perf_counter()
        seconds, ants_labels, ants_points = ants_reference(t1w_path, atlas)
        ants_total = time.perf_counter() - start
        ants_accuracy = registration_accuracy(t1w_path, truth, atlas, ants_points, ants_labels)
        print(f"sub-{subject:6} {'ANTs':6} {seconds['n4']:6.1f} {seconds['affine']:9.1f} {seconds['syn']:7.1f} "
              f"{ants_total:8.1f} {ants_accuracy['mean_error_mm']:12.2f} {ants_accuracy['p95_error_mm']:11.2f} "
              f"{ants_accuracy['median_dice']:12.3f}")
        rows.append((total, accuracy, ants_total, ants_accuracy))
    print(f"median over subjects: dipy (the stage) {statistics.median(r[0] for r in rows):.1f} s, mean error "
          f"{statistics.median(r[1]['mean_error_mm'] for r in rows):.2f} mm, median Dice "
          f"{statistics.median(r[1]['median_dice'] for r in rows):.3f}; ANTs "
          f"{statistics.median(r[2] for r in rows):.1f} s, "
          f"{statistics.median(r[3]['mean_error_mm'] for r in rows):.2f} mm, "
          f"Dice {statistics.median(r[3]['median_dice'] for r in rows):.3f}; time ratio dipy/ANTs "
          f"{statistics.median(r[0] / r[2] for r in rows):.2f}")
    if real is not None:
        t1w_path = next((real / "sub-01" / "anat").glob("*_T1w.nii.gz"))
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = register_t1w(load_t1w(t1w_path))
            runs.append((time.perf_counter() - start, result.metrics))
        volumes = sorted({m["brain_volume_ml"] for _, m in runs})
        _, m = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
        print(f"real T1w {t1w_path.name} {nib.load(t1w_path).shape}: "
              f"median {statistics.median(r[0] for r in runs):.1f} s "
              f"(n4 {m['n4_seconds']}, affine {m['affine_seconds']}, syn {m['syn_seconds']}), template correlation "
              f"{m['template_correlation']}, brain mask {m['brain_volume_ml']} ml; distinct mask volumes over "
              f"{repeats} runs: {volumes}")


def benchmark_sc(bids_dir: Path, derivatives: Path, subjects: list[str], repeats: int = 3, real: Path | None = None,
                 real_derivatives: Path | None = None, atlas: str = "synth") -> None:
    """Per-step time of the SC stage on the workflow's preprocessed DWI (median of ``repeats``
    runs, one thread) and streamlines per second, beside MRtrix3 on the same data, mask, seeds
    and labels; the preprocessing time from the workflow's own benchmark file; then the
    accuracy of the workflow's SC matrices against the synthetic ground truth."""
    import shutil

    from connex.inputs.paths import bids_path
    from connex.structural.connectome import connectome
    from connex.structural.preprocess import fsl_bvecs
    from connex.structural.stage import load_preprocessed
    from connex.structural.tracking import TrackingParams, fit_fodf, track

    params = TrackingParams()
    has_mrtrix = shutil.which("tckgen") is not None
    print(f"SC stage, 1 thread, median of {repeats} runs; defaults {params}")
    print(f"{'subject':10} {'prep s':>6} {'fodf s':>7} {'track s':>8} {'conn s':>7} {'sum s':>6} {'kept':>7} "
          f"{'sl/s':>7} | "
          f"MRtrix3 {'dti':>5} {'fodf':>5} {'track':>6} {'conn':>5} {'sum':>6} | dipy/MRtrix3")
    cases = [(derivatives, s, atlas) for s in subjects]
    if real is not None:
        cases.append((real_derivatives, "01", "desikankilliany"))
    for deriv_dir, subject, atlas_name in cases:
        def dwi_file(suffix, extension, deriv_dir=deriv_dir, subject=subject, **entities):
            return bids_path(deriv_dir, subject=subject, datatype="dwi", suffix=suffix, extension=extension, **entities)
        series = load_preprocessed(*(dwi_file("dwi", e, space="dwi", desc="preproc")
                                     for e in (".nii.gz", ".bval", ".bvec")))
        mask = np.asarray(nib.load(dwi_file("mask", ".nii.gz", space="dwi", desc="brain")).dataobj) > 0
        fa = nib.load(dwi_file("dwimap", ".nii.gz", space="dwi", model="tensor", param="fa")).get_fdata()
        labels = np.asarray(nib.load(dwi_file("dseg", ".nii.gz", space="dwi", atlas=atlas_name)).dataobj)
        preprocessing = pd.read_csv(deriv_dir.parent / "benchmarks" / "preprocess_dwi" / f"sub-{subject}.tsv",
                                    sep="\t")["s"].iloc[0]
        timings = []
        for _ in range(repeats):
            steps = {}
            start = time.perf_counter()
            fodf, _ = fit_fodf(series.data, series.gradient_table(50), mask, params.model)
            steps["fodf"] = time.perf_counter() - start
            start = time.perf_counter()
            streamlines, figures = track(fodf, fa, mask, series.affine, params)
            steps["track"] = time.perf_counter() - start
            start = time.perf_counter()
            connectome(streamlines, labels, series.affine, int(labels.max()), fa)
            steps["conn"] = time.perf_counter() - start
            timings.append((sum(steps.values()), steps, figures))
        total, steps, figures = sorted(timings, key=lambda r: r[0])[len(timings) // 2]
        line = (f"sub-{subject:6} {preprocessing:6.1f} {steps['fodf']:7.1f} {steps['track']:8.1f} {steps['conn']:7.1f} "
                f"{total:6.1f} {figures['streamlines_kept']:7d} "
                f"{figures['streamlines_generated'] / steps['track']:7.0f}")
        if has_mrtrix:
            with tempfile.TemporaryDirectory() as folder:
                folder = Path(folder)
                for name, data in (("dwi", series.data), ("mask", mask.astype(np.uint8)),
                                   ("seeds", (mask & (fa >= params.seed_fa_threshold)).astype(np.uint8)),
                                   ("labels", labels.astype(np.int32))):
                    nib.save(nib.Nifti1Image(data, series.affine), folder / f"{name}.nii.gz")
                np.savetxt(folder / "dwi.bval", series.bvals[None], fmt="%g")
                np.savetxt(folder / "dwi.bvec", fsl_bvecs(series), fmt="%.6f")
                mr = mrtrix_reference(folder / "dwi.nii.gz", folder / "dwi.bval", folder / "dwi.bvec",
                                       folder / "mask.nii.gz", folder / "seeds.nii.gz", folder / "labels.nii.gz",
                                       figures["streamlines_kept"], params, folder, 4.0)
            mr_sum = mr["response+fodf"] + mr["tracking"] + mr["connectome"]
            line += (f" | {mr['tensor']:13.1f} {mr['response+fodf']:5.1f} {mr['tracking']:6.1f} "
                     f"{mr['connectome']:5.1f} {mr_sum:6.1f} | {total / mr_sum:5.2f}")
        print(line)
    print("prep: the workflow's preprocess_dwi job (benchmark file); sum and ratio: fODF, tracking and connectome "
          "(MRtrix3: dwi2response fa + dwi2fod csd, tckgen -select <dipy's kept count>, tck2connectome)")
    accuracy = sc_accuracy(bids_dir, derivatives, atlas)
    print(f"accuracy over {accuracy['subjects']} synthetic subjects (workflow outputs, atlas {atlas}, count): ROC AUC "
          f"median {accuracy['auc_median']:.3f} (min {accuracy['auc_min']:.3f}); Spearman on true edges median "
          f"{accuracy['spearman_median']:.3f}; ranks of the SC effect edges by HC-SZ difference among "
          f"{accuracy['n_edges']} edges: {accuracy['effect_edge_ranks']}")


#: Cleaning variants the FC benchmark compares: (label, CleaningParams overrides).
FC_VARIANTS = [(f"{strategy}{'+GSR' if gsr else ''}", dict(strategy=strategy, global_signal=gsr))
               for strategy in CONFOUND_STRATEGIES for gsr in (False, True)]
FC_FILTERS = {"no filter": dict(low_pass=None, high_pass=None), "high-pass 0.01": dict(low_pass=None, high_pass=0.01),
              "band-pass 0.01-0.08": dict(low_pass=0.08, high_pass=0.01)}


def benchmark_fc(bids_dir: Path, derivatives: Path, subjects: list[str], repeats: int = 3, atlas: str = "synth",
                 task: str = "rest") -> None:
    """Per-step time of BOLD preprocessing and of the connectome (median of ``repeats`` runs, one
    thread) for ``subjects``, then, for every participant the workflow processed, accuracy against
    the true FC: the workflow's matrices, and every confound strategy and temporal filter
    recomputed from the workflow's preprocessed runs and confounds."""
    from connex.anat.atlases import atlas_positions, load_atlas
    from connex.anat.coreg import t1w_to_epi
    from connex.functional.connectivity import CleaningParams, censor, connectivity, parcellate, select_confounds
    from connex.functional.preprocess import preprocess_bold
    from connex.functional.stage import atlas_on_bold
    from connex.inputs.checks import read_sidecar
    from connex.inputs.paths import bids_path

    atlas_spec = load_atlas(atlas, synth_dir=bids_dir / "derivatives" / "groundtruth")
    default = CleaningParams()

    def clean_fc(image, labels, brain, confounds, metadata, repetition_time, params):
        selected = select_confounds(confounds, params, "benchmark", metadata=metadata)
        kept = censor(confounds["framewise_displacement"].to_numpy(), repetition_time, params,
                      n_regressors=0 if selected is None else selected.shape[1])
        series, missing = parcellate(image, labels, brain, atlas_spec.n_regions, selected, kept.keep, params,
                                     repetition_time)
        return {m: connectivity(series, missing, m) for m in FC_MEASURES}

    print(f"FC stage, 1 thread, median of {repeats} runs (the workflow's steps, rerun in this process)")
    print(f"{'subject':10} {'volumes':>7} {'load':>6} {'slice':>6} {'realign':>8} {'coreg':>6} {'confounds':>9} "
          f"{'connectome':>10} {'total s':>8}")
    for subject in subjects:
        def anat(suffix, subject=subject, **entities):
            return nib.load(bids_path(derivatives, subject=subject, datatype="anat", suffix=suffix, extension=".nii.gz",
                                      **entities))
        raw = bids_path(bids_dir, subject=subject, datatype="func", suffix="bold", extension=".nii.gz", task=task)
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = preprocess_bold(raw, read_sidecar(raw, bids_dir=bids_dir), anat("T1w", desc="preproc"),
                                     anat("mask", desc="brain"), {k: anat("probseg", label=k) for k in TISSUES},
                                     slice_timing=True)
            connectome_start = time.perf_counter()
            image = nib.Nifti1Image(result.series.data, result.series.affine)
            labels = atlas_positions(t1w_to_epi(anat("dseg", space="T1w", atlas=atlas), result.t1w_to_bold, image.shape,
                                                image.affine, interpolation="nearest"), atlas_spec)
            clean_fc(image, labels, result.masks.brain, result.confounds, result.confounds_metadata,
                     result.series.repetition_time, default)
            seconds = {**result.metrics["seconds"], "connectome": time.perf_counter() - connectome_start}
            runs.append((time.perf_counter() - start, seconds))
        total, seconds = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
        print(f"sub-{subject:6} {result.series.n_volumes:7d} {seconds['load']:6.1f} "
              f"{seconds.get('slice_timing', 0):6.1f} "
              f"{seconds['realign']:8.1f} {seconds['coregistration']:6.1f} {seconds['confounds']:9.1f} "
              f"{seconds['connectome']:10.1f} {total:8.1f}")
    print("goal: under 120 s per subject on one core")

    table: dict = {}
    participants = pd.read_csv(bids_dir / "participants.tsv", sep="\t")["participant_id"].str[4:]
    done = []
    for subject in participants:
        def func(suffix, extension, subject=subject, **entities):
            return bids_path(derivatives, subject=subject, datatype="func", suffix=suffix, extension=extension,
                             task=task, **entities)
        bold = func("bold", ".nii.gz", space="bold", desc="preproc")
        if not bold.exists():
            continue
        done.append(subject)
        image = nib.load(bold)
        # decompress once
        image = nib.Nifti1Image(np.asarray(image.dataobj, dtype=np.float32), image.affine, image.header)
        brain = np.asarray(nib.load(func("mask", ".nii.gz", space="bold", desc="brain")).dataobj) > 0
        labels = atlas_on_bold(atlas_spec, image, xfm=str(func("xfm", ".txt", from_="T1w", to="bold", mode="image")),
                               atlas_t1w=str(bids_path(derivatives, subject=subject, datatype="anat", suffix="dseg",
                                                       extension=".nii.gz", space="T1w", atlas=atlas)))
        confounds = pd.read_csv(func("timeseries", ".tsv", desc="confounds"), sep="\t")
        metadata = json.loads(func("timeseries", ".json", desc="confounds").read_text())
        repetition_time = float(image.header.get_zooms()[3])
        truth = true_fc(bids_dir, subject, atlas, task)
        for filter_name, filter_overrides in FC_FILTERS.items():
            for label, overrides in FC_VARIANTS:
                params = CleaningParams(**{**default.as_dict(), **overrides, **filter_overrides})
                matrix = clean_fc(image, labels, brain, confounds, metadata, repetition_time, params)["correlation"]
                table.setdefault((filter_name, label), []).append(upper_correlation(matrix, truth))
    print(f"\nCorrelation of recovered with true FC (upper triangle), median [min] over {len(done)} subjects; "
          f"FD > {default.fd_threshold} mm censored; default strategy {default.strategy}, no filter")
    print(f"{'strategy':14}" + "".join(f"{name:>22}" for name in FC_FILTERS))
    for label, _ in FC_VARIANTS:
        cells = [table[(name, label)] for name in FC_FILTERS]
        print(f"{label:14}" + "".join(f"{np.median(c):>14.3f} [{np.min(c):.3f}]" for c in cells))
    accuracy = fc_accuracy(bids_dir, derivatives, atlas, task)
    print(f"\nworkflow matrices ({accuracy['subjects']} subjects): median r {accuracy['r_median']:.3f} "
          f"(min {accuracy['r_min']:.3f}); ranks of the FC effect edges by HC-SZ difference among "
          f"{accuracy.get('n_edges')} edges: {accuracy.get('effect_edge_ranks')}")


def _cv_job(args):
    """One split of the model benchmark, in a worker process with one thread."""
    dataset_path, splits, split, models, graph, hyper, train, harmonise = args
    import torch

    torch.set_num_threads(1)
    from connex.evaluation.folds import run_fold
    from connex.model.dataset import ConnectomeDataset
    from connex.model.training import TrainParams

    start = time.perf_counter()
    out = run_fold(ConnectomeDataset.load(dataset_path), splits, split, models=models, graph_params=graph,
                   model_params=hyper, train_params=TrainParams(**train), harmonise=harmonise)
    return time.perf_counter() - start, out


def _merged(base: dict, overlay: dict) -> dict:
    """``overlay`` laid over ``base``, nested keys merged (as Snakemake merges --configfile)."""
    out = dict(base)
    for key, value in overlay.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def benchmark_model(connectomes: Path, *, atlas: str = "synth", folds: int = 5, repeats: int = 3, jobs: int = 2,
                    device: str = "cpu", models: tuple[str, ...] = ("connex",), config: Path | None = None) -> None:
    """Training throughput and the wall time of a full k-fold run of the model stages.

    Hyperparameters are those of ``config`` (default: config/config.yaml with the real-cohort
    overlay config/examples/cv-5x3.yaml laid over it, as the README runs a cohort: ensemble over
    folds ``auto``, ComBat ``auto``). Throughput: ConneX
    trained on the first training fold, epochs timed one by one (median of ``repeats`` after a
    warm-up). Full run: every split of one k-fold repeat in ``jobs`` worker processes of one
    thread each (what ``snakemake --cores jobs`` does with one job per split), beside the same
    run of logistic regression (the reference).
    """
    import tempfile
    from concurrent.futures import ProcessPoolExecutor

    import torch
    import yaml
    from snakemake.utils import validate

    from connex.evaluation.folds import build_graphs, make_graph_model, model_inputs
    from connex.evaluation.metrics import fold_metrics, summarise_metrics
    from connex.evaluation.splits import make_splits, split_indices
    from connex.model.dataset import ConnectomeDataset, build_dataset
    from connex.model.training import TrainParams, resolve_device, train_model, validation_split

    repo = Path(__file__).resolve().parents[2]
    if config is None:
        config = _merged(yaml.safe_load((repo / "config" / "config.yaml").read_text()),
                         yaml.safe_load((repo / "config" / "examples" / "cv-5x3.yaml").read_text()))
    else:
        config = yaml.safe_load(Path(config).read_text())
    validate(config, str(repo / "config" / "schema" / "config.schema.yaml"))  # fills in the defaults, as the workflow
    model_config = config["model"]
    train = {k: v for k, v in model_config["training"].items() if k != "validation_fraction"}
    train["device"] = device
    if Path(connectomes).suffix == ".npz":  # a dataset written by the dataset stage
        dataset = ConnectomeDataset.load(connectomes)
    else:
        dataset, _ = build_dataset(connectomes, atlas=atlas, sc_weight=model_config["sc_weight"],
                                   fc_measure=model_config["fc_measure"], task=config["bold_task"])
    n = len(dataset.regions)
    print(f"Model benchmark: {len(dataset.subjects)} subjects, {n} regions, device {resolve_device(device)} "
          f"({torch.cuda.get_device_name() if resolve_device(device).type == 'cuda' else f'{jobs} CPU core(s)'}), "
          f"torch {torch.__version__}")
    splits = make_splits(dataset, n_folds=folds, n_repeats=1, seed=model_config["cv"]["seed"])
    train_index, _ = split_indices(dataset, splits, "r01f01")
    fit, val = validation_split(dataset.y, train_index, fraction=model_config["training"]["validation_fraction"],
                                seed=train["seed"])
    graphs = build_graphs(dataset, train_index, **model_config["graph"])
    inputs = model_inputs("connex", graphs)
    for threads in (sorted({1, jobs}) if resolve_device(device).type == "cpu" else [1]):
        torch.set_num_threads(threads)
        model = make_graph_model("connex", inputs, model_config["architecture"])
        params = TrainParams(**{**train, "epochs": repeats + 1, "patience": 10_000})
        history = train_model(model, inputs, dataset.y, fit, val, params).history
        per_epoch = history["seconds"].to_numpy()[1:]  # the first epoch warms up
        print(f"  ConneX training, {threads} thread(s): {np.median(per_epoch):.3f} s per epoch (median of "
              f"{len(per_epoch)}; {len(fit)} training + {len(val)} validation subjects), "
              f"{len(fit) / np.median(per_epoch):.0f} training subjects/s")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dataset.npz"
        dataset.save(path)
        for label, chosen in (("reference: logistic regression", ["logistic_regression"]),
                              ("ConneX" if list(models) == ["connex"] else "models", list(models))):
            tasks = [(path, splits, split, chosen, model_config["graph"], model_config["architecture"], train,
                      model_config["harmonise"])
                     for split in sorted(splits["split"].unique())]
            start = time.perf_counter()
            if resolve_device(device).type == "cpu" and jobs > 1:
                with ProcessPoolExecutor(jobs) as pool:
                    results = list(pool.map(_cv_job, tasks))
            else:
                results = [_cv_job(task) for task in tasks]
            wall = time.perf_counter() - start
            summary = summarise_metrics(fold_metrics(pd.concat([r[1]["predictions"] for r in results])))
            epochs = [r[1]["info"].get("connex_best_epoch") for r in results]
            print(f"  {label} ({', '.join(chosen)}), {folds} folds: {wall:.1f} s wall "
                  f"(per split median {np.median([r[0] for r in results]):.1f} s"
                  + (f", best epochs {epochs}" if epochs[0] is not None else "") + ")")
            for row in summary.itertuples():
                print(f"    {row.model}: AUC {row.roc_auc_mean:.3f} +- {row.roc_auc_std:.3f}")
            if label.startswith("reference"):
                reference = wall
        print(f"  ratio {label} / reference wall time: {wall / reference:.1f}")
