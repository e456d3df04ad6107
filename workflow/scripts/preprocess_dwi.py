from connex.logs import log_to_file

log_to_file(snakemake.log[0], job=f"{snakemake.rule} {dict(snakemake.wildcards)}")

from connex.registry import TISSUES
from connex.structural.stage import run_preprocessing

out = snakemake.output
run_preprocessing(dwi_paths=list(snakemake.input.dwi), t1w_preproc=snakemake.input.preproc,
                  t1w_mask=snakemake.input.mask,
                  tissue_maps={tissue: snakemake.input[tissue] for tissue in TISSUES},
                  out={key: out[key] for key in ("dwi", "bval", "bvec", "sidecar", "mask", "xfm", "motion", "fa",
                                                 "md", *TISSUES)},
                  denoise=snakemake.params.denoise, gibbs=snakemake.params.gibbs,
                  motion_correction=snakemake.params.motion_correction, b0_threshold=snakemake.params.b0_threshold)
