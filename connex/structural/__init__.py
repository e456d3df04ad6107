"""Structural connectome stage: DWI preprocessing, fODF models and tracking, SC matrices, the stage runner."""
