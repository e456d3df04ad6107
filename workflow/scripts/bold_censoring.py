from connex.logs import log_to_file

log_to_file(snakemake.log[0])

from connex.functional.connectivity import CleaningParams
from connex.functional.stage import run_censoring

inp, out = snakemake.input, snakemake.output
run_censoring(inp.confounds, inp.sidecar, inp.bold, out.outliers, out.sidecar,
              params=CleaningParams(**snakemake.params.cleaning))
