from connex.logs import log_to_file

log_to_file(snakemake.log[0], job=f"{snakemake.rule} {dict(snakemake.wildcards)}")

from connex.model.dataset import build_dataset, write_dataset

params, out = snakemake.params, snakemake.output
location = params.location
dataset, table = build_dataset(location["root"], atlas=params.atlas, sc_weight=params.sc_weight,
                               fc_measure=params.fc_measure, task=params.task,
                               participants_dir=location["participants_dir"], files=location["files"],
                               label_column=params.label_column, classes=tuple(params.classes),
                               site_column=params.site_column, missing_modality=params.missing_modality,
                               modalities=params.modalities, missing_edges=params.missing_edges,
                               select=params.select, fc_timeseries=params.fc_timeseries)
write_dataset(dataset, table, out_npz=out.dataset, out_tsv=out.table)
