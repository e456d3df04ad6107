from connex.logs import log_to_file

log_to_file(snakemake.log[0], job=f"{snakemake.rule} {dict(snakemake.wildcards)}")

from connex.functional.stage import run_bold_preprocessing
from connex.inputs.checks import read_sidecar
from connex.registry import TISSUES

inp, out, params = snakemake.input, snakemake.output, snakemake.params
run_bold_preprocessing(bold=inp.bold, metadata=read_sidecar(inp.bold, bids_dir=params.bids_dir),
                       t1w_preproc=inp.preproc, t1w_mask=inp.mask,
                       tissue_maps={tissue: inp[tissue] for tissue in TISSUES},
                       out={key: out[key] for key in ("bold", "sidecar", "mask", "xfm", "confounds", "confounds_json",
                                                      *TISSUES)},
                       dummy_scans=params.dummy_scans, min_volumes=params.min_volumes, slice_timing=params.slice_timing,
                       n_compcor=params.n_compcor)
