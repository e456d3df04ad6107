from connex.logs import log_to_file

log_to_file(snakemake.log[0], job=f"{snakemake.rule} {dict(snakemake.wildcards)}")

import sys

from connex.inputs.bids import build_inventory, console_summary, write_bidsignore, write_derivatives_description
from connex.inputs.io import write_tsv

params = snakemake.params
table = build_inventory(params.bids_dir, task=params.task, label_column=params.label_column,
                        classes=tuple(params.classes), site_column=params.site_column or None,
                        include=params.include, exclude=params.exclude, strict=params.strict,
                        partial_dwi=params.partial_dwi, dwi_acquisition=params.dwi_acquisition)
write_tsv(table, snakemake.output.table)
# what is left out, and why, on the console too (the job's log holds the rest)
for line in console_summary(table):
    print(line, file=sys.__stderr__)
write_derivatives_description(target=snakemake.output.description, bids_dir=params.bids_dir)
write_bidsignore(snakemake.output.bidsignore)
