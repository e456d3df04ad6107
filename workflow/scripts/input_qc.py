from connex.logs import log_to_file

log_to_file(snakemake.log[0], job=f"{snakemake.rule} {dict(snakemake.wildcards)}")

from connex.report.figures import plot_subject_inputs

files = snakemake.params.files
plot_subject_inputs(bids_dir=snakemake.params.bids_dir, participant_id=snakemake.params.participant_id,
                    t1w=files["t1w"], dwi=files["dwi"], bold=files["bold"], out_png=snakemake.output.figure,
                    reason=files["reason"])
