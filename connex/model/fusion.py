"""Fusion and readout blocks of the graph models: unified cross-modal attention, MLP-Mixer blocks,
pooling of tokens into one vector, and classifier heads.

Shape letters: ``b`` graphs (subjects) in a batch, ``t`` tokens (regions of every modality),
``d`` features (``hidden``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from connex.errors import ConfigError, check_choice
from connex.registry import POOLINGS


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
            raise ConfigError(f"The width ({dim}) must be divisible by the attention heads ({heads}).")
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


#: Readouts by name (:data:`connex.registry.POOLINGS`, in its order): ``factory(t, d)``.
POOLING = {"region": RegionPooling, "mean": lambda n_tokens, dim: MeanPooling()}


def make_pooling(kind: str, n_tokens: int, dim: int) -> nn.Module:
    return POOLING[check_choice("pooling", kind, POOLINGS)](n_tokens, dim)


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
