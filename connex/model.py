"""ConneX: modality-specific GNN backbones, unified cross-modal attention, an MLP-Mixer and a
multi-head joint loss (Mazumder et al., EMBC 2025, arXiv 2505.15139), and the early-fusion baseline.

Shape letters: ``b`` graphs (subjects) in a batch, ``n`` regions, ``d`` features (``hidden``),
``m`` modalities, ``t`` tokens (``m * n``), ``e`` edges, ``f`` input node features, ``c`` classes.

The data flow of :class:`ConneX`::

    graphs[mod] --GraphBackbone--> (b, n, d) --stack--> (b, m, n, d)
        --CrossModalAttention--> (b, t, d) --MixerBlock x k--> LayerNorm --mean--> (b, d)
        --ClassifierHead--> logits["fused"] (b, c)
    and, per modality, mean of (b, n, d) --ClassifierHead--> logits[mod] (b, c)

All heads are trained together with :func:`joint_loss`. Models are picked by name from
:data:`MODELS` through :func:`build_model`; nothing here chooses a device.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GCNConv, GINEConv, SAGEConv

from connex.graphs import GraphBatch

#: Key of the head on the fused (cross-modal) representation.
FUSED = "fused"

_GAT_HEADS = 4


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
        if edge_input not in ("edge_weight", "edge_attr", None):
            raise ValueError("edge_input must be 'edge_weight', 'edge_attr' or None; "
                             f"{edge_input!r} was provided.")
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


#: Backbone convolutions by name: ``factory(d) -> ConvLayer`` of width ``d``.
BACKBONES: dict[str, Callable[[int], ConvLayer]] = {
    "gcn": gcn_layer,
    "gat": gat_layer,
    "gin": gin_layer,
    "sage": sage_layer,
}


def _backbone_factory(kind: str) -> Callable[[int], ConvLayer]:
    if kind not in BACKBONES:
        raise ValueError(f"backbone must be one of {sorted(BACKBONES)}; {kind!r} was provided.")
    return BACKBONES[kind]


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
        factory = _backbone_factory(kind)
        if layers < 1:
            raise ValueError(f"layers must be at least 1; {layers} was provided.")
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


class CrossModalAttention(nn.Module):
    """Unified attention over the regions of all modalities: every token (a region of one
    modality) attends to every other, so SC-SC, FC-FC and SC-FC pairs are all modelled.

    Learned modality ``(m, d)`` and region ``(n, d)`` embeddings are added to the tokens, then a
    pre-norm transformer layer: ``x + MHSA(LN(x))``, then ``x + FF(LN(x))`` with ``FF: d -> 2d -> d``.

    Parameters
    ----------
    dim : int
        ``d`` (divisible by ``heads``).
    n_regions, n_modalities : int
        ``n`` and ``m``.
    heads : int
        Attention heads.
    dropout : float
        Dropout inside the feed-forward and on both residual branches.
    attention_dropout : float
        Dropout on the attention weights. Off by default: on CPU it costs as much as the rest of
        ConneX together (a ``(b, heads, t, t)`` Bernoulli draw, and it rules out the fused
        attention kernel), while the residual dropout already regularises.

    Attributes
    ----------
    store_attention : bool
        When ``True``, :meth:`forward` keeps ``last_attention``.
    last_attention : Tensor (t, t) or None
        Attention weights of the last forward pass, averaged over heads and batch, detached
        (row ``q`` is the distribution of query token ``q``; token ``k * n + i`` is region ``i``
        of modality ``k``).
    """

    def __init__(self, dim: int, *, n_regions: int, n_modalities: int, heads: int = 4, dropout: float = 0.1,
                 attention_dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"The width ({dim}) must be divisible by the attention heads ({heads}).")
        self.modality_embedding = nn.Parameter(torch.empty(n_modalities, dim))
        self.region_embedding = nn.Parameter(torch.empty(n_regions, dim))
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, dropout=attention_dropout, batch_first=True)
        self.feedforward_norm = nn.LayerNorm(dim)
        self.feedforward = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout),
                                         nn.Linear(2 * dim, dim))
        self.dropout = nn.Dropout(dropout)
        self.store_attention = False
        self.last_attention: Tensor | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.modality_embedding, std=0.02)
        nn.init.normal_(self.region_embedding, std=0.02)
        self.attention_norm.reset_parameters()
        self.attention._reset_parameters()
        self.feedforward_norm.reset_parameters()
        self.feedforward[0].reset_parameters()
        self.feedforward[3].reset_parameters()

    def forward(self, tokens: Tensor) -> Tensor:
        """
        Parameters
        ----------
        tokens : Tensor (b, m, n, d)

        Returns
        -------
        Tensor (b, t, d)
            Modality-major: token ``k * n + i`` is region ``i`` of modality ``k``.
        """
        b, m, n, d = tokens.shape
        x = tokens + self.modality_embedding[None, :, None, :] + self.region_embedding[None, None, :, :]
        x = x.reshape(b, m * n, d)
        h = self.attention_norm(x)
        attended, weights = self.attention(h, h, h, need_weights=self.store_attention,
                                           average_attn_weights=True)
        if self.store_attention:
            self.last_attention = weights.mean(0).detach()
        x = x + self.dropout(attended)
        return x + self.dropout(self.feedforward(self.feedforward_norm(x)))


class MixerBlock(nn.Module):
    """An MLP-Mixer block: ``x + TokenMLP(LN(x)^T)^T``, then ``x + ChannelMLP(LN(x))``.

    The token-mixing MLP mixes the ``t`` tokens of each channel (the token order, fixed by the
    atlas and the modalities, is part of the model); the channel-mixing MLP mixes the ``d``
    channels of each token.

    Parameters
    ----------
    n_tokens : int
        ``t``.
    dim : int
        ``d``.
    token_hidden, channel_hidden : int
        Hidden widths of the two MLPs.
    dropout : float
        Dropout inside and after both MLPs.
    """

    def __init__(self, n_tokens: int, dim: int, *, token_hidden: int, channel_hidden: int,
                 dropout: float = 0.1):
        super().__init__()
        self.token_norm = nn.LayerNorm(dim)
        self.token_mlp = _mlp(n_tokens, token_hidden, dropout)
        self.channel_norm = nn.LayerNorm(dim)
        self.channel_mlp = _mlp(dim, channel_hidden, dropout)

    def reset_parameters(self) -> None:
        for module in (self.token_norm, self.token_mlp[0], self.token_mlp[3],
                       self.channel_norm, self.channel_mlp[0], self.channel_mlp[3]):
            module.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        """
        Parameters
        ----------
        x : Tensor (b, t, d)

        Returns
        -------
        Tensor (b, t, d)
        """
        x = x + self.token_mlp(self.token_norm(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.channel_norm(x))


def _mlp(dim: int, hidden: int, dropout: float) -> nn.Sequential:
    """``dim -> hidden -> dim`` with GELU and dropout."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim),
                         nn.Dropout(dropout))


class RegionPooling(nn.Module):
    """Readout ``(b, t, d) -> (b, d)`` with a learned weight per token and channel.

    Starts as the mean over tokens (every weight ``1 / t``). Unlike a plain mean, it can weigh a
    region's embedding by where the region is, so a head followed by a linear layer can express
    "edge (i, j) matters" (a low-rank bilinear form over the connectivity rows); a mean over
    regions only sees column averages of the matrix (measured on the synthetic cohort: sparse
    edge effects were then at chance).

    Parameters
    ----------
    n_tokens : int
        ``t``.
    dim : int
        ``d``.
    """

    def __init__(self, n_tokens: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_tokens, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.constant_(self.weight, 1.0 / self.weight.shape[0])

    def forward(self, x: Tensor) -> Tensor:
        """
        Parameters
        ----------
        x : Tensor (b, t, d)

        Returns
        -------
        Tensor (b, d)
        """
        return (x * self.weight).sum(1)


class MeanPooling(nn.Module):
    """Readout ``(b, t, d) -> (b, d)``: the mean over tokens (permutation invariant)."""

    def reset_parameters(self) -> None:
        pass

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(1)


#: Readouts by name: ``factory(t, d)``.
POOLING = {"region": RegionPooling, "mean": lambda n_tokens, dim: MeanPooling()}


def _pooling(kind: str, n_tokens: int, dim: int) -> nn.Module:
    if kind not in POOLING:
        raise ValueError(f"pooling must be one of {sorted(POOLING)}; {kind!r} was provided.")
    return POOLING[kind](n_tokens, dim)


class ClassifierHead(nn.Module):
    """``LayerNorm -> Linear -> GELU -> Dropout -> Linear``: ``(b, d) -> (b, c)`` logits.

    Parameters
    ----------
    dim : int
        ``d``.
    n_classes : int
        ``c``.
    hidden : int, optional
        Hidden width (default ``d``).
    dropout : float
    """

    def __init__(self, dim: int, n_classes: int, *, hidden: int | None = None, dropout: float = 0.1):
        super().__init__()
        hidden = dim if hidden is None else hidden
        self.norm = nn.LayerNorm(dim)
        self.hidden = nn.Linear(dim, hidden)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden, n_classes)

    def reset_parameters(self) -> None:
        self.norm.reset_parameters()
        self.hidden.reset_parameters()
        self.output.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        """
        Parameters
        ----------
        x : Tensor (b, d)

        Returns
        -------
        Tensor (b, c)
        """
        return self.output(self.dropout(F.gelu(self.hidden(self.norm(x)))))


def _check_batches(graphs: dict[str, GraphBatch], expected: tuple[str, ...], n_regions: int) -> None:
    """Raise ValueError unless ``graphs`` holds exactly ``expected`` with ``n_regions`` nodes each and
    the same number of subjects."""
    if set(graphs) != set(expected):
        raise ValueError(f"Expected graphs for modalities {list(expected)}; got {sorted(graphs)}.")
    for name in expected:
        if graphs[name].n_nodes != n_regions:
            raise ValueError(f"The model was built for {n_regions} regions; the {name!r} graphs have "
                             f"{graphs[name].n_nodes}.")
    sizes = {name: graphs[name].n_graphs for name in expected}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"Every modality needs the same subjects; batch sizes were {sizes}.")


class ConneX(nn.Module):
    """ConneX: one GNN backbone per modality, unified cross-modal attention over all regions of all
    modalities, an MLP-Mixer, and one classifier head per modality plus a fused head.

    Parameters
    ----------
    n_regions : int
        ``n``.
    in_dims : dict of str to int
        Node features ``f`` of each modality; its keys, in order, are the modalities (for example
        ``{"sc": n, "fc": n}``, or ``{"sc": n}`` for a single-modality ablation with ``m = 1``).
    backbone : str
        A key of :data:`BACKBONES`, used for every modality.
    hidden : int
        Width ``d`` everywhere (divisible by ``attention_heads``).
    layers : int
        Message-passing blocks per backbone.
    dropout : float
        Dropout of every block (backbones, attention and mixer residual branches, heads; the
        attention weights themselves are not dropped: see :class:`CrossModalAttention`).
    attention_heads : int
        Heads of :class:`CrossModalAttention`.
    mixer_blocks : int
        Number of :class:`MixerBlock` (0 disables the mixer).
    mixer_expansion : int
        Channel-mixing hidden width is ``mixer_expansion * d``; the token-mixing hidden width is
        ``max(t // 2, 16)`` (a bottleneck over the ``t = m * n`` tokens, as in MLP-Mixer where the
        token MLP is the narrower one).
    edge_mask : bool
        Learn one :class:`EdgeMask` per modality, multiplying that modality's edge weights. Frozen
        at creation; needs a backbone that uses edge weights (not ``sage``).
    n_classes : int
        ``c``.

    Attributes
    ----------
    modalities : tuple of str
    backbones : ModuleDict of GraphBackbone
    edge_masks : ModuleDict of EdgeMask
        Empty without ``edge_mask``.
    heads : ModuleDict of ClassifierHead
        One per modality and ``"fused"``.
    """

    def __init__(self, n_regions: int, in_dims: dict[str, int], *, backbone: str = "gcn", hidden: int = 64,
                 layers: int = 2, dropout: float = 0.2, attention_heads: int = 4, mixer_blocks: int = 2,
                 mixer_expansion: int = 2, edge_mask: bool = False, pooling: str = "region",
                 n_classes: int = 2):
        super().__init__()
        if not in_dims:
            raise ValueError("in_dims must name at least one modality, for example {'sc': n, 'fc': n}.")
        if FUSED in in_dims:
            raise ValueError(f"{FUSED!r} is the fused head's name and cannot be a modality of ConneX.")
        _backbone_factory(backbone)
        if edge_mask and backbone == "sage":
            raise ValueError("edge_mask needs a backbone that uses edge weights ('gcn', 'gat', 'gin'); "
                             "'sage' ignores them, so the mask could not learn anything.")
        self.n_regions = n_regions
        self.modalities = tuple(in_dims)
        n_tokens = len(self.modalities) * n_regions
        self.backbones = nn.ModuleDict({
            name: GraphBackbone(dim, hidden, kind=backbone, layers=layers, dropout=dropout)
            for name, dim in in_dims.items()
        })
        self.edge_masks = nn.ModuleDict({name: EdgeMask(n_regions) for name in in_dims} if edge_mask else {})
        self.attention = CrossModalAttention(hidden, n_regions=n_regions, n_modalities=len(self.modalities),
                                             heads=attention_heads, dropout=dropout)
        self.mixer = nn.ModuleList(
            MixerBlock(n_tokens, hidden, token_hidden=max(n_tokens // 2, 16),
                       channel_hidden=mixer_expansion * hidden, dropout=dropout)
            for _ in range(mixer_blocks)
        )
        self.norm = nn.LayerNorm(hidden)
        self.pools = nn.ModuleDict({name: _pooling(pooling, n_regions, hidden) for name in self.modalities})
        self.pools[FUSED] = _pooling(pooling, n_tokens, hidden)
        self.heads = nn.ModuleDict({name: ClassifierHead(hidden, n_classes, dropout=dropout)
                                    for name in (*self.modalities, FUSED)})

    def reset_parameters(self) -> None:
        for module in (*self.backbones.values(), *self.edge_masks.values(), self.attention, *self.mixer,
                       self.norm, *self.pools.values(), *self.heads.values()):
            module.reset_parameters()

    def forward(self, graphs: dict[str, GraphBatch]) -> dict[str, Tensor]:
        """
        Parameters
        ----------
        graphs : dict of str to GraphBatch
            One batch per modality (the same ``b`` subjects in the same order, ``n`` regions).

        Returns
        -------
        dict of str to Tensor (b, c)
            Logits of each modality's head and of ``"fused"``.
        """
        _check_batches(graphs, self.modalities, self.n_regions)
        embeddings = {}
        for name in self.modalities:
            batch = graphs[name]
            weight = None
            if name in self.edge_masks:
                weight = batch.edge_weight * self.edge_masks[name](batch.edge_pair)
            embeddings[name] = self.backbones[name](batch, weight)
        tokens = self.attention(torch.stack([embeddings[name] for name in self.modalities], dim=1))
        for block in self.mixer:
            tokens = block(tokens)
        logits = {name: self.heads[name](self.pools[name](embeddings[name])) for name in self.modalities}
        logits[FUSED] = self.heads[FUSED](self.pools[FUSED](self.norm(tokens)))
        return logits

    def edge_importance(self) -> dict[str, np.ndarray]:
        """Learned edge masks ``{modality: ndarray (n, n)}`` (symmetric, zero diagonal); empty
        without ``edge_mask``."""
        return {name: mask.matrix().detach().cpu().numpy() for name, mask in self.edge_masks.items()}


class EarlyFusionGNN(nn.Module):
    """Early-fusion baseline: one GNN on the fused graph (node features of all modalities side by
    side, union of the edges: :func:`connex.graphs.concatenate_graphs`), mean pooling, one head.

    Parameters
    ----------
    n_regions : int
        ``n``.
    in_dim : int
        Node features of the fused graph (``f_sc + f_fc``).
    backbone, hidden, layers, dropout, n_classes
        As in :class:`ConneX`.
    """

    def __init__(self, n_regions: int, in_dim: int, *, backbone: str = "gcn", hidden: int = 64,
                 layers: int = 2, dropout: float = 0.2, pooling: str = "region", n_classes: int = 2):
        super().__init__()
        self.n_regions = n_regions
        self.backbone = GraphBackbone(in_dim, hidden, kind=backbone, layers=layers, dropout=dropout)
        self.pool = _pooling(pooling, n_regions, hidden)
        self.head = ClassifierHead(hidden, n_classes, dropout=dropout)

    def reset_parameters(self) -> None:
        self.backbone.reset_parameters()
        self.pool.reset_parameters()
        self.head.reset_parameters()

    def forward(self, graphs: dict[str, GraphBatch]) -> dict[str, Tensor]:
        """
        Parameters
        ----------
        graphs : dict of str to GraphBatch
            Exactly ``{"fused": batch}``.

        Returns
        -------
        dict of str to Tensor (b, c)
            ``{"fused": logits}``.
        """
        _check_batches(graphs, (FUSED,), self.n_regions)
        return {FUSED: self.head(self.pool(self.backbone(graphs[FUSED])))}


def joint_loss(logits: dict[str, Tensor], target: Tensor, weights: dict[str, float]) -> Tensor:
    """Weighted sum of the cross-entropies of every head in ``logits``.

    Parameters
    ----------
    logits : dict of str to Tensor (b, c)
    target : Tensor (b,) int64
    weights : dict of str to float
        Weight of each head; heads absent from ``logits`` are ignored, heads of ``logits``
        absent from ``weights`` are an error.

    Returns
    -------
    Tensor
        Scalar loss.
    """
    if not logits:
        raise ValueError("joint_loss needs the logits of at least one head.")
    missing = [name for name in logits if name not in weights]
    if missing:
        raise ValueError(f"No loss weight for head(s) {missing}; weights were given for {sorted(weights)}.")
    return sum(weights[name] * F.cross_entropy(value, target) for name, value in logits.items())


#: Models by name, for :func:`build_model`.
MODELS: dict[str, type[nn.Module]] = {"connex": ConneX, "early_fusion": EarlyFusionGNN}


def build_model(name: str, n_regions: int, in_dims: dict[str, int], **hyper) -> nn.Module:
    """Build a model of :data:`MODELS` by name.

    Parameters
    ----------
    name : str
        ``"connex"`` or ``"early_fusion"``.
    n_regions : int
        ``n``.
    in_dims : dict of str to int
        Node features per modality. ``early_fusion`` takes their sum (the fused graph's features
        are the modalities' side by side), so ``{"sc": n, "fc": n}`` and ``{"fused": 2 * n}``
        build the same baseline.
    **hyper
        Keyword arguments of the model's constructor.
    """
    if name not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}; {name!r} was provided.")
    if name == "early_fusion":
        return EarlyFusionGNN(n_regions, sum(in_dims.values()), **hyper)
    return MODELS[name](n_regions, in_dims, **hyper)
