# Model stages: connectome dataset, cross-validation splits, one job per split, results.


include: "functions/model.smk"


rule connectome_dataset:
    """Pair each labelled participant's SC and FC with label, site, age and sex (group/dataset.npz);
    group/dataset.tsv lists every participant, included or not, and why."""
    input:
        unpack(model_dataset_inputs),
    output:
        dataset=group("dataset.npz"),
        table=group("dataset.tsv"),
    log:
        log_path("connectome_dataset"),
    benchmark:
        benchmark_path("connectome_dataset")
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        location=model_dataset_params,
        atlas=MODEL_ATLAS,
        sc_weight=MODEL["sc_weight"],
        fc_measure=MODEL["fc_measure"],
        task=TASK,
        label_column=config["label_column"],
        classes=config["classes"],
        site_column=config["site_column"],
        missing_modality=MODEL["missing_modality"],
        modalities=MODEL_MODALITIES,
        missing_edges=MODEL["missing_edges"],
        select=MODEL["select"],
        fc_timeseries=MODEL["fc_timeseries"],
    script:
        "../scripts/connectome_dataset.py"


checkpoint cv_splits:
    """The cross-validation splits shared by every model (group/splits.tsv)."""
    input:
        dataset=rules.connectome_dataset.output.dataset,
    output:
        splits=group("splits.tsv"),
    log:
        log_path("cv_splits"),
    benchmark:
        benchmark_path("cv_splits")
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        cv=CV_PARAMS,
    script:
        "../scripts/cv_splits.py"


rule train_fold:
    """Train ConneX and every baseline on one training fold; predict its test fold."""
    input:
        dataset=rules.connectome_dataset.output.dataset,
        splits=rules.cv_splits.output.splits,
    output:
        **{f"checkpoint_{m}": group(f"checkpoints/split-{{split}}_model-{m}.pt") for m in CHECKPOINT_MODELS},
        predictions=fold_file("predictions"),
        importance=fold_file("importance", ".npz"),
        history=fold_file("history"),
        permutations=fold_file("permutations"),
        info=fold_file("info", ".json"),
    log:
        log_path("train_fold", "split"),
    benchmark:
        benchmark_path("train_fold", "split")
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=train_fold_runtime,
    params:
        models=MODELS_RUN,
        graph={**MODEL["graph"], "weighting": model_weighting()},
        architecture=MODEL["architecture"],
        training=MODEL["training"],
        cv=CV_PARAMS,
        harmonise=MODEL["harmonise"],
        checkpoint_dir=checkpoint_folder,
    script:
        "../scripts/train_fold.py"


rule model_results:
    """metrics.tsv (mean and sd over splits), per-split metrics, predictions, importance, figures."""
    input:
        dataset=rules.connectome_dataset.output.dataset,
        predictions=all_fold_files("predictions"),
        importance=all_fold_files("importance", ".npz"),
        permutations=all_fold_files("permutations"),
    output:
        metrics=group("metrics.tsv"),
        metrics_per_split=group("metrics_per_split.tsv"),
        predictions=group("predictions.tsv"),
        edge_importance=group("edge_importance.tsv"),
        region_importance=group("region_importance.tsv"),
        roc=group("figures/roc.png"),
        confusion=group("figures/confusion.png"),
        importance=group("figures/importance.png"),
    log:
        log_path("model_results"),
    benchmark:
        benchmark_path("model_results")
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/model_results.py"


rule model:
    """Target: the model stages only (`snakemake model`)."""
    input:
        rules.model_results.output.metrics,
