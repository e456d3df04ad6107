from connex.logs import log_to_file

log_to_file(snakemake.log[0], job=f"{snakemake.rule} {dict(snakemake.wildcards)}")

from connex.functional.stage import run_functional_connectome

out, params = snakemake.output, snakemake.params
run_functional_connectome(timeseries=list(snakemake.input.timeseries),
                          out_matrices={m: out[f"meas_{m}"] for m in params.measures},
                          fisher_z=params.fisher_z, estimator=params.estimator)
