"""The names the pipeline knows, one registry per kind: the workflow, the schema and the package
all read them from here."""

from __future__ import annotations

#: Every model the evaluation can train, ConneX first.
MODELS = ("connex", "connex_sc", "connex_fc", "early_fusion", "logistic_regression", "linear_svm")
GRAPH_MODELS = ("connex", "connex_sc", "connex_fc", "early_fusion")
