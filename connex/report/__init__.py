"""Report stage: QC figures, the cohort QC table and the HTML report."""
