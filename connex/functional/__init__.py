"""Functional connectome stage: BOLD loading, realignment, confounds, parcellation and FC measures, the stage runner."""
