"""The Snakemake workflow: schema validation, lint, dry run, and a real run on read-only input."""

import hashlib
import json
import stat
import subprocess
import sys
from pathlib import Path

import jsonschema
import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from connex.inputs.bids import read_inventory
from connex.synth.accuracy import fc_accuracy, sc_accuracy
from tests.browser import CHROMIUM, screenshot
from tests.conftest import REPO

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--nolock"]


def snakemake(*args, cwd=REPO, timeout=1500):
    return subprocess.run(SNAKEMAKE + list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout)


def load_schema():
    return yaml.safe_load((REPO / "config" / "schema" / "config.schema.yaml").read_text())


def test_default_config_is_valid_and_every_key_is_described():
    schema = load_schema()
    jsonschema.validate(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), schema)

    def walk(properties):
        for key, spec in properties.items():
            assert "description" in spec and "default" in spec, key
            walk(spec.get("properties", {}))

    walk(schema["properties"])


def test_unknown_key_and_wrong_type_stop_before_any_job(tmp_path):
    unknown = snakemake("--dry-run", "--config", f"output_dir={tmp_path}", "bids_dri=/data")
    assert unknown.returncode != 0
    assert "'bids_dri' was unexpected" in unknown.stdout + unknown.stderr
    wrong = snakemake("--dry-run", "--config", f"output_dir={tmp_path}", "strict_inputs=maybe")
    assert wrong.returncode != 0
    assert "'maybe' is not of type 'boolean'" in wrong.stdout + wrong.stderr
    assert not (tmp_path / "connex").exists()


def test_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_dry_run_of_the_demo(tmp_path):
    result = snakemake("--dry-run", "--cores", "2", "--config", f"output_dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    for rule in ("synthesize_demo", "bids_inventory", "report"):
        assert rule in result.stdout
    assert not (tmp_path / "demo").exists()  # a dry run writes nothing


def overlay(folder: Path, settings: dict) -> str:
    """A config file laid over config/config.yaml (nested keys merge; --config would pass strings)."""
    path = folder / f"overlay-{len(list(folder.glob('overlay-*')))}.yaml"
    path.write_text(yaml.safe_dump(settings))
    return str(path)


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns,
                                         hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(folder.rglob("*"))}


def test_workflow_runs_on_read_only_input_and_never_writes_to_it(tiny_cohort_6, tmp_path):
    """The whole workflow, BIDS to metrics.tsv and the report, on a read-only BIDS folder.
    As root, permissions do not stop writes, so the folder is also compared before and after."""
    import shutil

    tiny_bids = Path(shutil.copytree(tiny_cohort_6, tmp_path / "bids"))
    for path in [tiny_bids, *tiny_bids.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    before = snapshot(tiny_bids)
    out = tmp_path / "out"
    try:
        # The tiny runs last 80 s (40 volumes): let them through scrubbing (the default asks for 120 s),
        # and regress nothing: the default's 22 regressors leave 40 volumes too few degrees of freedom.
        result = snakemake("--cores", "2", "--configfile",
                           overlay(tmp_path, {"fc": {"min_clean_seconds": 60, "strategy": "none"}}),
                           "--config", f"bids_dir={tiny_bids}", f"output_dir={out}")
    finally:
        for path in [tiny_bids, *tiny_bids.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    assert result.returncode == 0, result.stderr[-3000:]
    assert snapshot(tiny_bids) == before
    table = read_inventory(out / "connex" / "group" / "availability.tsv")
    assert table["use_model"].all() and len(table) == 6
    for subject in ("01", "02", "03"):
        assert (out / "connex" / f"sub-{subject}" / "figures" / f"sub-{subject}_desc-inputs_qc.png").is_file()
    for subject in ("01", "02", "03"):
        anat = out / "connex" / f"sub-{subject}" / "anat"
        sidecar = json.loads((anat / f"sub-{subject}_space-T1w_atlas-synth_dseg.json").read_text())
        assert sidecar["NumberOfRegions"] == 8 and sidecar["MissingRegions"] == []
        assert (anat / f"sub-{subject}_from-T1w_to-MNI152NLin2009aSym_mode-image_desc-warp_xfm.nii.gz").is_file()
        for name in ("from-T1w_to-MNI152NLin2009aSym", "from-MNI152NLin2009aSym_to-T1w"):
            assert (anat / f"sub-{subject}_{name}_mode-image_xfm.h5").stat().st_size > 1000
        assert (anat / f"sub-{subject}_label-WM_probseg.nii.gz").is_file()
        # every dseg has its look-up table beside it (BIDS _dseg.tsv): the indices the image holds
        tissues = pd.read_csv(anat / f"sub-{subject}_dseg.tsv", sep="\t")
        assert tissues.values.tolist() == [[1, "GM"], [2, "WM"], [3, "CSF"]]
        regions = pd.read_csv(anat / f"sub-{subject}_space-T1w_atlas-synth_dseg.tsv", sep="\t")
        image = nib.load(anat / f"sub-{subject}_space-T1w_atlas-synth_dseg.nii.gz")
        assert set(np.unique(np.asarray(image.dataobj))) - {0} <= set(regions["index"])
        positions = pd.read_csv(out / "connex" / f"sub-{subject}" / "dwi" /
                                f"sub-{subject}_space-dwi_atlas-synth_dseg.tsv", sep="\t")
        assert positions["index"].tolist() == list(range(1, 9))
        assert positions["atlas_index"].tolist() == regions["index"].tolist()
        bold = json.loads((out / "connex" / f"sub-{subject}" / "func" /
                           f"sub-{subject}_task-rest_space-bold_desc-preproc_bold.json").read_text())
        assert bold["TaskName"] == "rest" and bold["SkullStripped"] is False and "SliceTimingCorrected" in bold
    for subject in ("01", "02", "03"):
        dwi = out / "connex" / f"sub-{subject}" / "dwi"
        count = pd.read_csv(dwi / f"sub-{subject}_atlas-synth_stat-count_relmat.tsv", sep="\t")
        names = pd.read_csv(tiny_bids / "derivatives" / "groundtruth" / "atlas-synth_dseg.tsv", sep="\t")["name"]
        assert count.shape == (8, 8) and list(count.columns) == list(names)  # full atlas, atlas order
        assert np.allclose(count.to_numpy(), count.to_numpy().T) and np.all(np.diag(count.to_numpy()) == 0)
        sidecar = json.loads((dwi / f"sub-{subject}_atlas-synth_stat-count_relmat.json").read_text())
        assert sidecar["streamlines"] > 100 and sidecar["Tractography"]["parameters"]["model"] == "csd"
    accuracy = sc_accuracy(tiny_bids, out / "connex")
    # chance is 0.5; 4 mm voxels, 12 directions and 8 regions give a coarse, deterministic 0.75
    assert accuracy["subjects"] == 6 and accuracy["auc_median"] >= 0.7
    for subject in ("01", "02", "03"):
        func = out / "connex" / f"sub-{subject}" / "func"
        for measure in ("correlation", "partialcorrelation", "covariance"):
            matrix = pd.read_csv(func / f"sub-{subject}_task-rest_atlas-synth_stat-{measure}_relmat.tsv", sep="\t")
            assert matrix.shape == (8, 8) and np.allclose(matrix.to_numpy(), matrix.to_numpy().T)
        series = pd.read_csv(func / f"sub-{subject}_task-rest_atlas-synth_timeseries.tsv", sep="\t")
        decision = json.loads((func / f"sub-{subject}_task-rest_outliers.json").read_text())
        assert decision["Included"] and len(series) == decision["VolumesKept"] and series.shape[1] == 8
        confounds = pd.read_csv(func / f"sub-{subject}_task-rest_desc-confounds_timeseries.tsv", sep="\t")
        assert len(confounds) == 40 and {"framewise_displacement", "a_comp_cor_00", "csf"} <= set(confounds.columns)
    fc = fc_accuracy(tiny_bids, out / "connex")
    # 40 volumes of 8 regions at 6 mm: far from the demo's accuracy (0.54-0.65 when measured), but far
    # above chance (0), which is what a wrong region order or atlas mapping would give
    assert fc["subjects"] == 6 and fc["r_median"] >= 0.45
    report = (out / "connex" / "group" / "report.html").read_text()
    # input, registration, SC and FC QC per subject; QC-FC; ROC, confusion matrices, importance
    assert report.count("data:image/png;base64,") == 6 * 4 + 1 + 3
    qcfc = json.loads((out / "connex" / "group" / "atlas-synth_stat-qcfc_relmat.json").read_text())
    assert qcfc["Participants"] == 6 and qcfc["Edges"] == 28 and "Warning" in qcfc
    assert "<h2 id='qcfc'>" in report and f"<td>{qcfc['MedianAbsoluteQCFC']}</td>" in report
    assert "Model: cross-validated classification" in report and "logistic_regression" in report
    qc = pd.read_csv(out / "connex" / "group" / "qc.tsv", sep="\t").set_index("participant_id")
    assert (len(qc) == 6
            and qc[["t1w_template_r", "streamlines", "mean_fd_mm", "volumes_kept_fraction"]].notna().all().all())
    for subject in ("01", "02"):  # the table holds what the stages' sidecars say
        tracking = json.loads((out / "connex" / f"sub-{subject}" / "dwi" /
                               f"sub-{subject}_space-dwi_tractography.json").read_text())
        assert qc.loc[f"sub-{subject}", "streamlines"] == tracking["streamlines_kept"]
    assert "<h2 id='qc'>Cohort QC</h2>" in report and report.count("<th>T1w-template correlation</th>") == 1
    assert report.count("T1w-template correlation: <b>") == 6  # each participant's own numbers
    if CHROMIUM:  # look at it in a browser: the page renders, figures and tables, not a blank page
        picture = plt.imread(screenshot(out / "connex" / "group" / "report.html", tmp_path / "report.png"))
        assert picture.shape[:2] == (2400, 1400)
        assert (picture[..., :3].mean(-1) < 0.9).mean() > 0.03  # text, tables and figures drawn
    metrics = pd.read_csv(out / "connex" / "group" / "metrics.tsv", sep="\t")
    assert len(metrics) == 7 and (metrics["n_splits"] == 6).all()  # 7 models, 3 folds x 2 repeats (config.yaml)
    dataset = pd.read_csv(out / "connex" / "group" / "dataset.tsv", sep="\t")
    assert dataset["included"].all() and len(dataset) == 6
    description = json.loads((out / "connex" / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["DatasetLinks"]["raw"].startswith("file://")
    assert "*_relmat.tsv" in (out / "connex" / ".bidsignore").read_text().splitlines()
    assert not list(out.rglob(".*.tmp*")) and not [p for p in out.rglob(".*") if p.name.startswith(".sub-")]

    # Asking for more clean time than the runs have: only the scrubbing decision reruns, and every
    # run is left out of the FC target with the reason written down, not crashed.
    strict = snakemake("--cores", "2", "fc", "--configfile", overlay(tmp_path, {"fc": {"min_clean_seconds": 1000}}),
                       "--config", f"bids_dir={tiny_bids}", f"output_dir={out}")
    assert strict.returncode == 0, strict.stderr[-3000:]
    assert "preprocess_bold" not in strict.stdout + strict.stderr
    decision = json.loads((out / "connex" / "sub-01" / "func" / "sub-01_task-rest_outliers.json").read_text())
    assert decision["Included"] is False and "minimum of 1000 s" in decision["Reason"]


def test_named_stage_target_runs_only_that_stage(tiny_bids, tmp_path):
    out = tmp_path / "out"
    result = snakemake("--cores", "1", "inputs", "--config", f"bids_dir={tiny_bids}", f"output_dir={out}",
                       "participants={'include': ['02']}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "connex" / "sub-02" / "figures" / "sub-02_desc-inputs_qc.png").is_file()
    assert not (out / "connex" / "sub-01").exists()
    assert not (out / "connex" / "group" / "report.html").exists()
    # one labelled participant cannot fill a cross-validation: the model stages are left out of
    # `all` (and the report) with a warning, instead of failing the whole run at the dataset stage
    plan = snakemake("--dry-run", "--cores", "1", "--config", f"bids_dir={tiny_bids}", f"output_dir={out}",
                     "participants={'include': ['02']}")
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "Model stages left out" in plan.stdout + plan.stderr
    assert "rule report" in plan.stdout and "connectome_dataset" not in plan.stdout


def test_fc_from_fmriprep_derivatives_through_the_workflow(tiny_bids, tmp_path, rng):
    """fc.fmriprep_dir set: no BOLD (or anatomy) preprocessing; connectomes from fMRIPrep's runs."""
    from tests.test_connectivity import fake_fmriprep

    fmriprep = tmp_path / "fmriprep"
    for subject in ("01", "02", "03"):
        atlas, _ = fake_fmriprep(fmriprep, rng, subject=subject)
    image, table = tmp_path / "two.nii.gz", tmp_path / "two.tsv"

    nib.save(nib.Nifti1Image(atlas.labels, atlas.affine), image)
    atlas.table[["index", "name"]].to_csv(table, sep="\t", index=False)
    settings = {"atlases": ["two"], "custom_atlases": {"two": {"image": str(image), "table": str(table)}},
                "fc": {"fmriprep_dir": str(fmriprep), "strategy": "6P", "min_clean_seconds": 60}}
    out = tmp_path / "out"
    result = snakemake("--cores", "2", "fc", "--configfile", overlay(tmp_path, settings), "--config",
                       f"bids_dir={tiny_bids}", f"output_dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "preprocess_bold" not in result.stdout + result.stderr
    assert "preprocess_anat" not in result.stdout + result.stderr
    for subject in ("01", "02", "03"):
        matrix = pd.read_csv(out / "connex" / f"sub-{subject}" / "func" /
                             f"sub-{subject}_task-rest_atlas-two_stat-correlation_relmat.tsv", sep="\t")
        assert list(matrix.columns) == ["left", "right"] and 0.5 < matrix.iloc[0, 1] < 0.95


def test_model_stages_alone_on_connectomes_from_elsewhere(tmp_path):
    """connectomes_dir set: dataset, splits, one job per split, results; no BIDS stage runs."""
    from connex.synth import SynthConfig
    from connex.synth.cohort import generate_connectomes

    connectomes = generate_connectomes(tmp_path / "conn", SynthConfig(
        n_subjects=12, n_regions=10, n_volumes=60, n_sc_effect_edges=2, n_fc_effect_edges=2))
    settings = {"connectomes_dir": str(connectomes),
                "model": {"cv": {"folds": 2, "repeats": 2, "checkpoints": True},
                          "training": {"epochs": 4, "patience": 2},
                          "architecture": {"hidden": 8, "attention_heads": 2, "mixer_blocks": 1}}}
    out = tmp_path / "out"
    result = snakemake("--cores", "2", "--configfile", overlay(tmp_path, settings), "--config", f"output_dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "synthesize_demo" not in log and "bids_inventory" not in log
    assert log.count("rule train_fold:") == 4  # one job per split
    group = out / "connex" / "group"
    metrics = pd.read_csv(group / "metrics.tsv", sep="\t")
    assert metrics["model"].tolist() == ["connex", "connex_sc", "connex_fc", "early_fusion",
                                         "logistic_regression", "linear_svm", "tangent_logistic_regression"]
    assert (metrics["n_splits"] == 4).all() and metrics["roc_auc_mean"].between(0, 1).all()
    per_split = pd.read_csv(group / "metrics_per_split.tsv", sep="\t")
    assert len(per_split) == 4 * 7 and (per_split["n_test"] == 6).all()
    predictions = pd.read_csv(group / "predictions.tsv", sep="\t")
    assert len(predictions) == 12 * 2 * 7  # every subject tested once per repeat, by every model
    splits = pd.read_csv(group / "splits.tsv", sep="\t")
    for split, table in predictions.groupby("split"):
        tested = set(splits.loc[(splits["split"] == split) & (splits["role"] == "test"), "participant_id"])
        assert all(set(t["participant_id"]) == tested for _, t in table.groupby("model"))
    for name in ("roc", "confusion", "importance"):
        assert (group / "figures" / f"{name}.png").stat().st_size > 10_000
    assert len(list((group / "checkpoints").glob("*.pt"))) == 4 * 4  # model.cv.checkpoints on
    again = snakemake("--cores", "2", "--configfile", overlay(tmp_path, settings), "--config", f"output_dir={out}")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_fc_only_cohort_runs_the_fc_models_end_to_end(tmp_path):
    """An FC-only cohort (no SC at all, as most public ones) with model.modalities [fc]: the models
    that need SC are left out with a warning; ConneX FC only and the baselines run on FC alone."""
    from connex.synth import SynthConfig
    from connex.synth.cohort import generate_connectomes

    connectomes = generate_connectomes(tmp_path / "conn", SynthConfig(
        n_subjects=12, n_regions=10, n_volumes=60, n_sc_effect_edges=2, n_fc_effect_edges=2))
    for sc in connectomes.glob("sub-*/dwi/*_relmat.tsv"):
        sc.unlink()
    settings = {"connectomes_dir": str(connectomes),
                "model": {"modalities": ["fc"], "cv": {"folds": 2, "repeats": 1},
                          "training": {"epochs": 4, "patience": 2},
                          "architecture": {"hidden": 8, "attention_heads": 2, "mixer_blocks": 1}}}
    out = tmp_path / "out"
    result = snakemake("--cores", "2", "--configfile", overlay(tmp_path, settings), "--config", f"output_dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Models left out: ['connex', 'connex_sc', 'early_fusion']" in result.stderr
    group = out / "connex" / "group"
    metrics = pd.read_csv(group / "metrics.tsv", sep="\t")
    assert metrics["model"].tolist() == ["connex_fc", "logistic_regression", "linear_svm",
                                         "tangent_logistic_regression"]
    assert metrics.loc[0, "best_baseline"] in {"logistic_regression", "linear_svm", "tangent_logistic_regression"}
    assert pd.read_csv(group / "dataset.tsv", sep="\t")["included"].all()
    assert not (group / "checkpoints").exists()  # model.cv.checkpoints is off by default


def test_two_sessions_give_one_connectome_per_session_from_all_runs(tiny_sessions_cohort, tmp_path):
    """A dataset with ses- folders is processed per visit (sub-XX/ses-YY/... outputs, one job per
    participant and session), a visit's BOLD runs each on their own and their time series
    concatenated into one matrix; the model stage reads each participant's first session, or the
    one model.select.session names."""
    import shutil

    bids = Path(shutil.copytree(tiny_sessions_cohort, tmp_path / "bids"))
    func = bids / "sub-02" / "ses-2" / "func"  # two runs: ses-2's own, and a rescan (ses-1's images)
    for extension in (".nii.gz", ".json"):
        source = func / f"sub-02_ses-2_task-rest_bold{extension}"
        source.rename(func / f"sub-02_ses-2_task-rest_run-1_bold{extension}")
        shutil.copy(bids / "sub-02" / "ses-1" / "func" / f"sub-02_ses-1_task-rest_bold{extension}",
                    func / f"sub-02_ses-2_task-rest_run-2_bold{extension}")
    out = tmp_path / "out"
    settings = {"fc": {"min_clean_seconds": 60, "strategy": "none"}, "model": {"modalities": ["fc"]}}
    dataset = out / "connex" / "group" / "dataset.npz"
    result = snakemake("--cores", "2", "fc", str(dataset), "--configfile", overlay(tmp_path, settings),
                       "--config", f"bids_dir={bids}", f"output_dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    connex = out / "connex"
    matrices = sorted(p.relative_to(connex).as_posix()
                      for p in connex.glob("sub-*/ses-*/func/*_stat-correlation_relmat.tsv"))
    assert matrices == [f"sub-{s}/ses-{v}/func/sub-{s}_ses-{v}_task-rest_atlas-synth_stat-correlation_relmat.tsv"
                        for s in ("01", "02") for v in ("1", "2")]
    assert not list(connex.glob("sub-*/func"))  # nothing outside the session folders
    for job in ("sub-01_ses-1_task-rest", "sub-01_ses-2_task-rest", "sub-02_ses-1_task-rest",
                "sub-02_ses-2_task-rest_run-1", "sub-02_ses-2_task-rest_run-2"):
        assert (out / "logs" / "preprocess_bold" / f"{job}.log").is_file(), job
    # the two sessions are two scans (new head position, motion, noise), not one copied
    first, second = (pd.read_csv(connex / m, sep="\t").to_numpy() for m in matrices[:2])
    assert first.shape == (8, 8) and not np.allclose(first, second)
    # two runs: each cleaned to its own time series, one matrix of both
    folder = connex / "sub-02" / "ses-2" / "func"
    series = [pd.read_csv(folder / f"sub-02_ses-2_task-rest_run-{r}_atlas-synth_timeseries.tsv", sep="\t")
              for r in ("1", "2")]
    kept = [json.loads((folder / f"sub-02_ses-2_task-rest_run-{r}_outliers.json").read_text())["VolumesKept"]
            for r in ("1", "2")]
    assert [len(t) for t in series] == kept and 30 <= min(kept)
    sidecar = json.loads((folder / "sub-02_ses-2_task-rest_atlas-synth_stat-correlation_relmat.json").read_text())
    assert sidecar["Runs"] == 2 and sidecar["VolumesKept"] == sum(kept) and sidecar["FisherZ"] is False
    pooled = np.concatenate([t.to_numpy() - t.to_numpy().mean(axis=0) for t in series])
    combined = pd.read_csv(folder / "sub-02_ses-2_task-rest_atlas-synth_stat-correlation_relmat.tsv", sep="\t")
    assert combined.iloc[0, 1] == pytest.approx(np.corrcoef(pooled.T)[0, 1], abs=1e-6)
    table = pd.read_csv(connex / "group" / "dataset.tsv", sep="\t")
    assert table["fc_file"].str.contains("/ses-1/").all() and table["included"].all()
    assert "first session in sorted order" in result.stderr
    # the SC stage has one job per visit too (planned, not run: tractography is the slow part)
    plan = snakemake("--dry-run", "--cores", "1", "sc", "--configfile", overlay(tmp_path, settings),
                     "--config", f"bids_dir={bids}", f"output_dir={out}")
    assert plan.stdout.count("rule tractography:") == 4, plan.stdout[-2000:]

    settings["model"]["select"] = {"session": "2"}
    again = snakemake("--cores", "2", str(dataset), "--configfile", overlay(tmp_path, settings),
                      "--config", f"bids_dir={bids}", f"output_dir={out}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "rule preprocess_bold" not in again.stdout + again.stderr
    table = pd.read_csv(connex / "group" / "dataset.tsv", sep="\t")
    assert table["fc_file"].str.contains("/ses-2/").all()
