from connex.logs import log_to_file

log_to_file(snakemake.log[0], job=f"{snakemake.rule} {dict(snakemake.wildcards)}")

from connex.anat.atlases import load_atlas
from connex.inputs.io import write_json, write_tsv
from connex.report.qcfc import cohort_qc_fc, plot_qc_fc, qc_fc_table

spec = snakemake.params.atlas
atlas = load_atlas(spec["name"], custom=spec["custom"], synth_dir=spec["synth_dir"])
participants = snakemake.input.participants
if not participants.endswith(".tsv"):  # the demo's BIDS folder
    participants = f"{participants}/participants.tsv"
result, distance, summary = cohort_qc_fc(list(snakemake.input.connectomes), snakemake.params.visits,
                                         qc_tsv=snakemake.input.qc, participants_tsv=participants, atlas=atlas,
                                         fisher_z_done=snakemake.params.fisher_z)
write_tsv(qc_fc_table(result, atlas.table["name"].tolist()), snakemake.output.matrix)
write_json({**summary, "Atlas": atlas.name, "Measure": "QC-FC: partial correlation of Fisher-z FC with mean FD",
            "Sources": list(snakemake.input.connectomes) + [snakemake.input.qc]}, snakemake.output.summary)
plot_qc_fc(result, distance, summary, snakemake.output.figure, title=f"QC-FC, atlas {atlas.name}")
