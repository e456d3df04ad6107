from pathlib import Path

from connex.logs import log_to_file

log_to_file(snakemake.log[0])

from connex.report import write_report  # noqa: E402

# Figures are named sub-<label>_desc-inputs_qc.png: the participant id is the name's first entity.
figures = {}
for figure in list(snakemake.input.figures) + list(snakemake.input.anat_figures):
    figures.setdefault(Path(figure).name.split("_")[0], []).append(figure)
write_report(snakemake.input.table, figures, snakemake.output.html, dataset=snakemake.params.dataset)
