from connex.logs import log_to_file

log_to_file(snakemake.log[0])

from connex.structural.stage import run_tractography
from connex.structural.tracking import TrackingParams

inp = snakemake.input
run_tractography(inp.dwi, inp.bval, inp.bvec, inp.mask, inp.fa, {"GM": inp.GM, "WM": inp.WM, "CSF": inp.CSF},
                 snakemake.output.tractogram, snakemake.output.sidecar,
                 params=TrackingParams(**snakemake.params.tracking), b0_threshold=snakemake.params.b0_threshold)
