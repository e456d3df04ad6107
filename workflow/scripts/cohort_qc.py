from connex.logs import log_to_file

log_to_file(snakemake.log[0])

from connex.cohort_qc import cohort_qc_table  # noqa: E402
from connex.io import write_tsv  # noqa: E402

table = cohort_qc_table(snakemake.params.sidecars)
write_tsv(table, snakemake.output.table)
