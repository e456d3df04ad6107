"""Inputs: BIDS discovery and validation, the one output-path helper, whole-or-nothing I/O."""
