"""Model stages: the connectome dataset, graphs, the graph models (ConneX and baselines) and their training."""
