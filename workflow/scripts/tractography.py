from connex.logs import log_to_file

log_to_file(snakemake.log[0], job=f"{snakemake.rule} {dict(snakemake.wildcards)}")

from connex.registry import TISSUES
from connex.structural.stage import run_tractography
from connex.structural.tracking import TrackingParams

inp = snakemake.input
run_tractography(dwi=inp.dwi, bval=inp.bval, bvec=inp.bvec, mask=inp.mask, fa=inp.fa,
                 tissue_maps={tissue: inp[tissue] for tissue in TISSUES}, tractogram=snakemake.output.tractogram,
                 sidecar=snakemake.output.sidecar, params=TrackingParams(**snakemake.params.tracking),
                 b0_threshold=snakemake.params.b0_threshold, threads=snakemake.threads)
