from connex.logs import log_to_file

log_to_file(snakemake.log[0])

from connex.functional.stage import run_bold_preprocessing
from connex.inputs.checks import read_sidecar

inp, out, params = snakemake.input, snakemake.output, snakemake.params
run_bold_preprocessing(inp.bold, read_sidecar(inp.bold, params.bids_dir), inp.preproc, inp.mask,
                       {"GM": inp.gm, "WM": inp.wm, "CSF": inp.csf},
                       {key: out[key] for key in ("bold", "sidecar", "mask", "xfm", "confounds", "confounds_json",
                                                  "GM", "WM", "CSF")},
                       dummy_scans=params.dummy_scans, min_volumes=params.min_volumes, slice_timing=params.slice_timing,
                       n_compcor=params.n_compcor)
