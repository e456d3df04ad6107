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

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from connex.errors import ConfigError, check_choice
from connex.model.fusion import ClassifierHead, CrossModalAttention, MixerBlock, make_pooling
from connex.model.graphs import GraphBatch
from connex.model.layers import EdgeMask, GraphBackbone, backbone_factory
from connex.registry import FUSED


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

    def __init__(self, n_regions: int, in_dims: dict[str, int], *, backbone: str = "gcn", hidden: int = 32,
                 layers: int = 1, dropout: float = 0.3, attention_heads: int = 4, mixer_blocks: int = 2,
                 mixer_expansion: int = 2, edge_mask: bool = False, pooling: str = "region",
                 n_classes: int = 2):
        super().__init__()
        if not in_dims:
            raise ValueError("in_dims must name at least one modality, for example {'sc': n, 'fc': n}.")
        if FUSED in in_dims:
            raise ValueError(f"{FUSED!r} is the fused head's name and cannot be a modality of ConneX.")
        backbone_factory(backbone)
        if edge_mask and backbone == "sage":
            raise ConfigError("edge_mask needs a backbone that uses edge weights ('gcn', 'gat', 'gin'); "
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
        self.pools = nn.ModuleDict({name: make_pooling(pooling, n_regions, hidden) for name in self.modalities})
        self.pools[FUSED] = make_pooling(pooling, n_tokens, hidden)
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

    def __init__(self, n_regions: int, in_dim: int, *, backbone: str = "gcn", hidden: int = 32,
                 layers: int = 1, dropout: float = 0.3, pooling: str = "region", n_classes: int = 2):
        super().__init__()
        self.n_regions = n_regions
        self.backbone = GraphBackbone(in_dim, hidden, kind=backbone, layers=layers, dropout=dropout)
        self.pool = make_pooling(pooling, n_regions, hidden)
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


class Ensemble(nn.Module):
    """Members trained apart (on different validation splits, from different seeds) that predict
    together: each head's logits are the mean of the members' logits.

    Parameters
    ----------
    members : list of nn.Module
        Models with the same heads.
    """

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("An ensemble needs at least one member.")
        self.members = nn.ModuleList(members)

    def forward(self, graphs: dict[str, GraphBatch]) -> dict[str, Tensor]:
        outputs = [member(graphs) for member in self.members]
        return {head: torch.stack([out[head] for out in outputs]).mean(0) for head in outputs[0]}

    def edge_importance(self) -> dict[str, np.ndarray]:
        """The members' edge masks, averaged (empty without ``edge_mask``)."""
        masks = [getattr(m, "edge_importance", dict)() for m in self.members]
        return {k: np.mean([m[k] for m in masks], axis=0) for k in masks[0]}


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


#: Models by name, for :func:`build_model`: the ``architecture`` of every graph model of
#: :data:`connex.registry.MODEL_SPECS`.
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
    check_choice("model", name, MODELS)
    if name == "early_fusion":
        return EarlyFusionGNN(n_regions, sum(in_dims.values()), **hyper)
    return MODELS[name](n_regions, in_dims, **hyper)
