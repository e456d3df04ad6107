"""Synthetic BIDS cohorts with ground truth (true SC, true FC, known group effect)."""

from connex.synth.cohort import SynthConfig, generate_cohort, generate_connectomes

__all__ = ["SynthConfig", "generate_cohort", "generate_connectomes"]
