from connex.logs import log_to_file

log_to_file(snakemake.log[0])

from connex.sc import run_tractography  # noqa: E402
from connex.tractography import TrackingParams  # noqa: E402

inp = snakemake.input
run_tractography(inp.dwi, inp.bval, inp.bvec, inp.mask, inp.fa, {"GM": inp.GM, "WM": inp.WM, "CSF": inp.CSF},
                 snakemake.output.tractogram, snakemake.output.sidecar,
                 params=TrackingParams(**snakemake.params.tracking), b0_threshold=snakemake.params.b0_threshold)
