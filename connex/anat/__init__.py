"""Anatomy stage: MNI152 template, atlases, T1w preprocessing and registration, EPI-to-T1w coregistration."""
