from connex.logs import log_to_file

log_to_file(snakemake.log[0])

from connex.qc import plot_subject_inputs  # noqa: E402

files = snakemake.params.files
plot_subject_inputs(snakemake.params.bids_dir, snakemake.params.participant_id, files["t1w"],
                    files["dwi"], files["bold"], snakemake.output.figure, reason=files["reason"])
