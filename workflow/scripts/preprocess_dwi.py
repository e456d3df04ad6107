from connex.logs import log_to_file

log_to_file(snakemake.log[0])

from connex.structural.stage import run_preprocessing

out = snakemake.output
run_preprocessing(list(snakemake.input.dwi), snakemake.input.preproc, snakemake.input.mask,
                  {"GM": snakemake.input.gm, "WM": snakemake.input.wm, "CSF": snakemake.input.csf},
                  {key: out[key] for key in ("dwi", "bval", "bvec", "sidecar", "mask", "xfm", "motion", "fa", "md",
                                             "GM", "WM", "CSF")},
                  denoise=snakemake.params.denoise, gibbs=snakemake.params.gibbs,
                  motion_correction=snakemake.params.motion_correction, b0_threshold=snakemake.params.b0_threshold)
