"""ConneX: BIDS to structural and functional connectomes to a multimodal graph classifier."""

__version__ = "0.1.0"
