# Input functions of the report's rules (workflow/rules/report.smk), and the targets of `all`.
from connex.report.cohort_qc import qc_sidecars, sidecars_written, written_sidecars


def cohort_qc_params(wildcards):
    """visit label (sub-01, or sub-01_ses-1) -> {stage: JSON path} of the QC sidecars this run
    makes for each visit (only those: a stale file of a stage that no longer runs for a visit is
    never read)."""
    bold_runs = {}  # every BOLD run of a visit: its preprocessing and scrubbing numbers
    for visit, key in fc_candidates():
        bold_runs.setdefault(visit, []).append(key)
    stages = {
        "anat": set(visits_with("use_anat")),
        "sc": set(visits_with("use_sc")),
        "fc": set(bold_runs),
        "fc_kept": set(fc_kept_visits()),
    }
    # The matrices the model reads, where this run makes them.
    atlas = MODEL_ATLAS if MODEL_ATLAS in ATLASES else ATLASES[0]
    fc_measure = MODEL["fc_measure"] if MODEL["fc_measure"] in FC_MEASURES else FC_MEASURES[0]
    table = {}
    for _, row in inventory().iterrows():
        visit = table_visit(row)
        files = qc_sidecars(
            DERIVATIVES,
            visit.subject,
            session=visit.session,
            atlas=atlas,
            task=TASK,
            bold_runs=bold_runs.get(visit, [""]),
            sc_weight=MODEL["sc_weight"],
            fc_measure=fc_measure,
        )
        written = sidecars_written(visit, **stages, fmriprep=bool(FMRIPREP_DIR))
        table[visit.label] = {stage: str(path) for stage, path in written_sidecars(files, written).items()}
    return table


def cohort_qc_inputs(wildcards):
    """Every QC sidecar the cohort QC table reads."""
    return sorted({path for files in cohort_qc_params(wildcards).values() for path in files.values()})


def qc_fc_visits():
    """participant label -> the visit whose FC QC-FC reads: one per participant, the model's choice
    of session (model_visits); none with connectomes_dir (no head motion is known there)."""
    if CONNECTOMES_DIR:
        return {}
    return model_visits(fc_kept_visits())


def qc_fc_atlas():
    """The atlas QC-FC is computed for: the model's, as in the cohort QC table."""
    return MODEL_ATLAS if MODEL_ATLAS in ATLASES else ATLASES[0]


def qc_fc_possible():
    """Whether this run makes FC correlation matrices for enough participants for QC-FC
    (connex.report.qcfc)."""
    from connex.report.qcfc import MIN_PARTICIPANTS  # here: scipy.stats is slow to import at parse time

    return "correlation" in FC_MEASURES and len(qc_fc_visits()) >= MIN_PARTICIPANTS


def qc_fc_inputs(wildcards):
    """The cohort QC table (mean FD), each participant's FC correlation matrix, participants.tsv
    (age, sex) and the atlas files (region centroids)."""
    visits = qc_fc_visits().values()
    return {
        "qc": rules.cohort_qc.output.table,
        "connectomes": [fc_matrix(v, wildcards.atlas, "correlation") for v in visits],
        "participants": rules.synthesize_demo.output.bids if IS_DEMO else str(BIDS_DIR / "participants.tsv"),
        "atlas_files": atlas_input_files(wildcards),
    }


def qc_fc_visit_labels(wildcards):
    """Visit labels (sub-01, sub-01_ses-1) in the order of qc_fc_inputs' connectomes."""
    return [v.label for v in qc_fc_visits().values()]


def report_qc_fc_inputs(wildcards):
    """QC-FC's summary and figure, where it can be computed."""
    if not qc_fc_possible():
        return {}
    out = rules.qc_fc.output
    atlas = qc_fc_atlas()
    return {"qcfc": out.summary.format(atlas=atlas), "qcfc_figure": out.figure.format(atlas=atlas)}


def report_model_inputs(wildcards):
    """The model results the report shows (none when the model stages cannot run)."""
    if not model_is_possible():
        return {}
    out = rules.model_results.output
    return {"metrics": out.metrics, "model_figures": [out.roc, out.confusion, out.importance]}


def all_static_outputs(wildcards):
    """Targets of `all` known before any checkpoint: the report (metrics.tsv with connectomes_dir).
    Kept apart from the per-subject targets, so a dry run lists them."""
    if CONNECTOMES_DIR:
        return [rules.model_results.output.metrics]
    return [rules.report.output.html]


def all_subject_outputs(wildcards):
    """Every per-subject output known after the inventory checkpoint (anatomy, SC, every BOLD
    run's scrubbing decision and, without fMRIPrep, its preprocessing); none with connectomes_dir."""
    if CONNECTOMES_DIR:
        return []
    return [*all_anat_outputs(wildcards), *all_sc_outputs(wildcards), *all_fc_decisions(wildcards)]


def all_scrubbed_outputs(wildcards):
    """The FC outputs of the runs kept after scrubbing, and metrics.tsv; none with
    connectomes_dir. A function of its own in `all`: asking for the scrubbing checkpoints stops
    at the first one not yet run, and in one function with the targets above it hid them, so
    Snakemake learnt of the BOLD jobs one at a time and ran them one after the other (the
    demo's last 150 s on one core)."""
    if CONNECTOMES_DIR:
        return []
    model = [rules.model_results.output.metrics] if model_is_possible() else []
    return [*all_fc_outputs(wildcards), *model]
