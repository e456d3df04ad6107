"""Evaluation: cross-validation splits, metrics, linear baselines, the fold driver, importance, cohort results."""
