from connex.logs import log_to_file

log_to_file(snakemake.log[0], job=f"{snakemake.rule} {dict(snakemake.wildcards)}")

from connex.synth import SynthConfig, generate_cohort

generate_cohort(
    snakemake.output.bids,
    SynthConfig(n_subjects=snakemake.params.subjects, seed=snakemake.params.seed,
                n_sites=snakemake.params.sites, n_regions=snakemake.params.regions),
    n_jobs=snakemake.threads,
)
