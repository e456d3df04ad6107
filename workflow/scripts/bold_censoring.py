from connex.logs import log_to_file

log_to_file(snakemake.log[0])

from connex.connectivity import CleaningParams  # noqa: E402
from connex.fc import run_censoring  # noqa: E402

inp, out = snakemake.input, snakemake.output
run_censoring(inp.confounds, inp.sidecar, inp.bold, out.outliers, out.sidecar,
              params=CleaningParams(**snakemake.params.cleaning))
