"""The graph layers of the models: message-passing layers, the per-modality GNN backbone, and the
edge mask shared across subjects.

Shape letters: ``b`` graphs (subjects) in a batch, ``n`` regions, ``d`` features (``hidden``),
``e`` edges."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GCNConv, GINEConv, SAGEConv

from connex.errors import ConfigError, check_choice
from connex.model.graphs import GraphBatch
from connex.registry import BACKBONES as BACKBONE_NAMES

_GAT_HEADS = 4

#: How a convolution takes the edge weights (:class:`ConvLayer`).
EDGE_INPUTS = ("edge_weight", "edge_attr", None)


class ConvLayer(nn.Module):
    """One message-passing layer ``(b * n, d) -> (b * n, d)`` with a uniform call.

    Wraps a PyTorch Geometric convolution and hands it the edge weights the way it takes them.

    Parameters
    ----------
    conv : MessagePassing
        The convolution (input and output width ``d``).
    edge_input : {"edge_weight", "edge_attr", None}
        ``edge_weight``: passed as the ``edge_weight`` argument (scalar per edge);
        ``edge_attr``: passed as a one-column edge feature ``(e, 1)``; ``None``: ignored.
    """

    def __init__(self, conv: nn.Module, edge_input: str | None):
        super().__init__()
        check_choice("edge_input", edge_input, EDGE_INPUTS)
        self.conv = conv
        self.edge_input = edge_input

    @property
    def uses_edge_weight(self) -> bool:
        return self.edge_input is not None

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor) -> Tensor:
        """
        Parameters
        ----------
        x : Tensor (b * n, d)
        edge_index : Tensor (2, e) int64
        edge_weight : Tensor (e,)

        Returns
        -------
        Tensor (b * n, d)
        """
        if self.edge_input == "edge_weight":
            return self.conv(x, edge_index, edge_weight=edge_weight)
        if self.edge_input == "edge_attr":
            return self.conv(x, edge_index, edge_attr=edge_weight[:, None])
        return self.conv(x, edge_index)


def gcn_layer(dim: int) -> ConvLayer:
    """``GCNConv`` (symmetric normalisation, self-loops of weight 1); edge weights scale messages."""
    return ConvLayer(GCNConv(dim, dim), "edge_weight")


def gat_layer(dim: int) -> ConvLayer:
    """``GATConv`` with 4 heads averaged (output width ``dim``); the edge weight is a one-column
    edge feature that enters the attention logits (self-loops get the mean incoming weight)."""
    return ConvLayer(GATConv(dim, dim, heads=_GAT_HEADS, concat=False, edge_dim=1, fill_value="mean"),
                     "edge_attr")


def gin_layer(dim: int) -> ConvLayer:
    """``GINEConv`` with a two-layer MLP and learnable epsilon; the edge weight is linearly
    projected and added to each neighbour's message (``edge_dim=1``)."""
    mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))
    return ConvLayer(GINEConv(mlp, train_eps=True, edge_dim=1), "edge_attr")


def sage_layer(dim: int) -> ConvLayer:
    """``SAGEConv`` with mean aggregation. It does not take edge weights: they (and an edge mask)
    are ignored, only the graph's topology is used."""
    return ConvLayer(SAGEConv(dim, dim), None)


#: Backbone convolutions by name (:data:`connex.registry.BACKBONES`, in its order):
#: ``factory(d) -> ConvLayer`` of width ``d``.
BACKBONES: dict[str, Callable[[int], ConvLayer]] = {
    "gcn": gcn_layer,
    "gat": gat_layer,
    "gin": gin_layer,
    "sage": sage_layer,
}


def backbone_factory(kind: str) -> Callable[[int], ConvLayer]:
    return BACKBONES[check_choice("backbone", kind, BACKBONE_NAMES)]


class GraphBackbone(nn.Module):
    """Region embeddings of one modality: an input projection, then ``layers`` residual blocks of
    ``conv -> LayerNorm -> GELU -> dropout``.

    Parameters
    ----------
    in_dim : int
        Node features ``f``.
    hidden : int
        Embedding width ``d``.
    kind : str
        A key of :data:`BACKBONES`.
    layers : int
        Message-passing blocks.
    dropout : float
        Dropout after each block.
    """

    def __init__(self, in_dim: int, hidden: int, *, kind: str = "gcn", layers: int = 2, dropout: float = 0.2):
        super().__init__()
        factory = backbone_factory(kind)
        if layers < 1:
            raise ConfigError(f"layers must be at least 1; {layers} was provided.")
        self.kind = kind
        self.input = nn.Linear(in_dim, hidden)
        self.convs = nn.ModuleList(factory(hidden) for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)

    @property
    def uses_edge_weight(self) -> bool:
        """Whether the convolutions use the edge weights (``False`` for ``sage``)."""
        return self.convs[0].uses_edge_weight

    def reset_parameters(self) -> None:
        self.input.reset_parameters()
        for conv, norm in zip(self.convs, self.norms):
            conv.reset_parameters()
            norm.reset_parameters()

    def forward(self, batch: GraphBatch, edge_weight: Tensor | None = None) -> Tensor:
        """
        Parameters
        ----------
        batch : GraphBatch
            ``b`` graphs of ``n`` regions, features ``(b * n, f)``.
        edge_weight : Tensor (e,), optional
            Replaces ``batch.edge_weight`` (for example masked weights).

        Returns
        -------
        Tensor (b, n, d)
        """
        weight = batch.edge_weight if edge_weight is None else edge_weight
        h = self.input(batch.x)
        for conv, norm in zip(self.convs, self.norms):
            h = h + self.dropout(F.gelu(norm(conv(h, batch.edge_index, weight))))
        return h.view(batch.n_graphs, batch.n_nodes, -1)


class EdgeMask(nn.Module):
    """A learned importance in (0, 1) for every unordered region pair, shared by all subjects.

    The mask multiplies the edge weights of one modality. Its logits start at 2.2 (mask ~0.9)
    and are created frozen (``requires_grad=False``): the trainer unfreezes them with
    ``model.edge_masks.requires_grad_(True)`` for the fine-tuning phase, adding
    :meth:`penalty` to the loss as an L1 sparsity term.

    Parameters
    ----------
    n_regions : int
        ``n``.

    Attributes
    ----------
    logits : Parameter (n * (n - 1) / 2,)
        One logit per pair ``i < j`` (upper triangle, row-major).
    """

    initial_logit = 2.2

    def __init__(self, n_regions: int):
        super().__init__()
        if n_regions < 2:
            raise ValueError(f"An edge mask needs at least 2 regions; {n_regions} was provided.")
        self.n_regions = n_regions
        rows, cols = np.triu_indices(n_regions, 1)
        lookup = np.zeros((n_regions, n_regions), dtype=np.int64)
        lookup[rows, cols] = np.arange(len(rows))
        lookup[cols, rows] = np.arange(len(rows))
        self.register_buffer("pair_to_logit", torch.from_numpy(lookup.ravel()), persistent=False)
        self.register_buffer("is_self_pair", torch.eye(n_regions, dtype=torch.bool).ravel(), persistent=False)
        self.logits = nn.Parameter(torch.empty(len(rows)), requires_grad=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.logits.fill_(self.initial_logit)

    def forward(self, edge_pair: Tensor) -> Tensor:
        """
        Parameters
        ----------
        edge_pair : Tensor (e,) int64
            Region pair of each edge, ``i * n + j`` (see :class:`~connex.graphs.GraphBatch`).

        Returns
        -------
        Tensor (e,)
            Mask value of each edge's pair; self-pairs (``i == j``, absent from our graphs) get 1.
        """
        values = torch.sigmoid(self.logits)[self.pair_to_logit[edge_pair]]
        return torch.where(self.is_self_pair[edge_pair], torch.ones_like(values), values)

    def matrix(self) -> Tensor:
        """Mask values as a symmetric matrix ``(n, n)`` with a zero diagonal."""
        n = self.n_regions
        values = torch.sigmoid(self.logits)[self.pair_to_logit].view(n, n)
        return values.masked_fill(self.is_self_pair.view(n, n), 0.0)

    def penalty(self) -> Tensor:
        """Mean mask value over all pairs (a scalar L1 sparsity penalty; the values are positive)."""
        return torch.sigmoid(self.logits).mean()
