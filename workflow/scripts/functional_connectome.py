from connex.logs import log_to_file

log_to_file(snakemake.log[0])

from connex.anat.atlases import load_atlas
from connex.functional.connectivity import CleaningParams
from connex.functional.stage import run_functional_connectome

inp, out, params = snakemake.input, snakemake.output, snakemake.params
spec = params.atlas
atlas = load_atlas(spec["name"], custom=spec["custom"], synth_dir=spec["synth_dir"])
run_functional_connectome(inp.bold, inp.mask, inp.confounds, inp.outliers, inp.sidecar, atlas, out.timeseries,
                          {m: out[f"meas_{m}"] for m in params.measures}, out.figure,
                          params=CleaningParams(**params.cleaning), fisher_z=params.fisher_z,
                          estimator=params.estimator, title=f"sub-{snakemake.wildcards.subject}",
                          atlas_t1w=inp.get("atlas_t1w"), xfm=inp.get("xfm"))
