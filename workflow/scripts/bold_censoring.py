from connex.logs import log_to_file

log_to_file(snakemake.log[0], job=f"{snakemake.rule} {dict(snakemake.wildcards)}")

from connex.functional.connectivity import CleaningParams
from connex.functional.stage import run_censoring

inp, out = snakemake.input, snakemake.output
run_censoring(confounds=inp.confounds, sidecar=inp.sidecar, bold=inp.bold, out_tsv=out.outliers, out_json=out.sidecar,
              params=CleaningParams(**snakemake.params.cleaning))
