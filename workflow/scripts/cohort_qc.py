from connex.logs import log_to_file

log_to_file(snakemake.log[0], job=f"{snakemake.rule} {dict(snakemake.wildcards)}")

from connex.inputs.io import write_tsv
from connex.report.cohort_qc import cohort_qc_table

table = cohort_qc_table(snakemake.params.sidecars)
write_tsv(table, snakemake.output.table)
