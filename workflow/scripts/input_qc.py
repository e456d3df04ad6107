from connex.logs import log_to_file

log_to_file(snakemake.log[0])

from connex.report.figures import plot_subject_inputs

files = snakemake.params.files
plot_subject_inputs(snakemake.params.bids_dir, snakemake.params.participant_id, files["t1w"],
                    files["dwi"], files["bold"], snakemake.output.figure, reason=files["reason"])
