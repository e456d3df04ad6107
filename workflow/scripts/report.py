from pathlib import Path

from connex.logs import log_to_file

log_to_file(snakemake.log[0], job=f"{snakemake.rule} {dict(snakemake.wildcards)}")

from connex.report.html import write_report

# Figures are named sub-<label>_..._qc.png: the participant id is the name's first entity.
figures = {}
for figure in [*snakemake.input.figures, *snakemake.input.anat_figures, *snakemake.input.sc_figures,
               *snakemake.input.fc_figures]:
    figures.setdefault(Path(figure).name.split("_")[0], []).append(figure)
write_report(availability_tsv=snakemake.input.table, qc_figures=figures, out_html=snakemake.output.html,
             dataset=snakemake.params.dataset,
             qc_tsv=snakemake.input.qc,
             metrics_tsv=snakemake.input.get("metrics"), model_figures=list(snakemake.input.get("model_figures", [])),
             qcfc_json=snakemake.input.get("qcfc"), qcfc_figure=snakemake.input.get("qcfc_figure"))
