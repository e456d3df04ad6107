from connex.logs import log_to_file

log_to_file(snakemake.log[0], job=f"{snakemake.rule} {dict(snakemake.wildcards)}")

from connex.anat.atlases import load_atlas
from connex.functional.connectivity import CleaningParams
from connex.functional.stage import run_region_timeseries

inp, out, params = snakemake.input, snakemake.output, snakemake.params
spec = params.atlas
atlas = load_atlas(spec["name"], custom=spec["custom"], synth_dir=spec["synth_dir"])
run_region_timeseries(bold=inp.bold, mask=inp.mask, confounds=inp.confounds, outliers=inp.outliers,
                      sidecar=inp.sidecar, atlas=atlas, out_timeseries=out.timeseries, out_figure=out.figure,
                      params=CleaningParams(**params.cleaning), title=params.title,
                      atlas_t1w=inp.get("atlas_t1w"), xfm=inp.get("xfm"))
