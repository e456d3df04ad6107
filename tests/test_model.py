"""ConneX and its blocks on tiny graphs of unequal sizes (7 regions, 3 subjects, width 12)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from connex.errors import ConfigError
from connex.model.architectures import MODELS, ConneX, EarlyFusionGNN, Ensemble, build_model, joint_loss
from connex.model.fusion import ClassifierHead, CrossModalAttention, MixerBlock
from connex.model.graphs import GraphTransform, collate, concatenate_graphs
from connex.model.layers import BACKBONES, EdgeMask, GraphBackbone

N_REGIONS = 7
N_SUBJECTS = 5
BATCH = [0, 1, 2]
HIDDEN = 12
SMALL = {"hidden": HIDDEN, "layers": 2, "attention_heads": 4, "mixer_blocks": 1, "dropout": 0.1}


def sc_matrices(rng: np.random.Generator, s: int, n: int) -> np.ndarray:
    """Symmetric non-negative streamline counts ``(s, n, n)`` with a zero diagonal."""
    counts = rng.gamma(1.0, 50.0, size=(s, n, n)).round()
    counts = counts + counts.transpose(0, 2, 1)
    counts[:, np.arange(n), np.arange(n)] = 0
    return counts


def fc_matrices(rng: np.random.Generator, s: int, n: int, t: int = 30) -> np.ndarray:
    """Correlation matrices ``(s, n, n)`` of random time series."""
    return np.stack([np.corrcoef(rng.standard_normal((t, n)).T) for _ in range(s)])


def subject_graphs(sc: np.ndarray, fc: np.ndarray, k: int = 3) -> dict:
    return {"sc": GraphTransform("log1p", k=k).fit(sc).transform(sc),
            "fc": GraphTransform("fisher_z", k=k).fit(fc).transform(fc)}


@pytest.fixture
def graphs(rng) -> dict:
    return subject_graphs(sc_matrices(rng, N_SUBJECTS, N_REGIONS), fc_matrices(rng, N_SUBJECTS, N_REGIONS))


@pytest.fixture
def batches(graphs) -> dict:
    return {name: collate(g, BATCH) for name, g in graphs.items()}


def make_connex(backbone: str = "gcn", modalities=("sc", "fc"), **kwargs) -> ConneX:
    torch.manual_seed(0)
    in_dims = {name: N_REGIONS for name in modalities}
    return ConneX(N_REGIONS, in_dims, backbone=backbone, **{**SMALL, **kwargs})


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_connex_forward_backward(backbone, batches):
    model = make_connex(backbone)
    logits = model(batches)
    assert set(logits) == {"sc", "fc", "fused"}
    for value in logits.values():
        assert value.shape == (len(BATCH), 2)
    joint_loss(logits, torch.tensor([0, 1, 1]), {"sc": 0.5, "fc": 0.5, "fused": 1.0}).backward()
    for name, backbone_module in model.backbones.items():
        for param_name, param in backbone_module.named_parameters():
            assert param.grad is not None, f"{name}.{param_name} got no gradient"
            assert torch.isfinite(param.grad).all(), f"{name}.{param_name}"
            assert param.grad.abs().sum() > 0, f"{name}.{param_name} got a zero gradient"


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_graph_backbone_shape(backbone, batches):
    torch.manual_seed(0)
    out = GraphBackbone(N_REGIONS, HIDDEN, kind=backbone, layers=3)(batches["sc"])
    assert out.shape == (len(BATCH), N_REGIONS, HIDDEN)


def test_single_modality_connex(batches):
    model = make_connex(modalities=("sc",))
    logits = model({"sc": batches["sc"]})
    assert set(logits) == {"sc", "fused"}
    assert logits["fused"].shape == (len(BATCH), 2)


def test_early_fusion_shapes(graphs):
    fused = collate(concatenate_graphs(graphs["sc"], graphs["fc"]), BATCH)
    torch.manual_seed(0)
    model = EarlyFusionGNN(N_REGIONS, 2 * N_REGIONS, hidden=HIDDEN, n_classes=3)
    logits = model({"fused": fused})
    assert set(logits) == {"fused"}
    assert logits["fused"].shape == (len(BATCH), 3)
    built = build_model("early_fusion", N_REGIONS, {"sc": N_REGIONS, "fc": N_REGIONS}, hidden=HIDDEN)
    assert isinstance(built, EarlyFusionGNN)
    assert built.backbone.input.in_features == 2 * N_REGIONS
    with pytest.raises(ValueError, match="modalities"):
        model({"sc": fused})


def test_build_model_registry():
    assert set(MODELS) == {"connex", "early_fusion"}
    model = build_model("connex", N_REGIONS, {"sc": N_REGIONS, "fc": N_REGIONS}, **SMALL)
    assert isinstance(model, ConneX) and model.modalities == ("sc", "fc")
    with pytest.raises(ConfigError,
                       match=r"'model' must be one of \{'connex', 'early_fusion'\}; 'transformer' was provided"):
        build_model("transformer", N_REGIONS, {"sc": N_REGIONS})


def test_mixer_block_shape():
    torch.manual_seed(0)
    block = MixerBlock(10, 6, token_hidden=5, channel_hidden=9)
    x = torch.randn(3, 10, 6)
    assert block(x).shape == (3, 10, 6)
    # Token mixing really mixes tokens: changing one token changes the others' outputs.
    block.eval()
    y = x.clone()
    y[:, 0] = torch.randn(3, 6)  # not a constant shift: LayerNorm would remove it
    assert not torch.allclose(block(x)[:, 1:], block(y)[:, 1:])


def test_classifier_head_shape():
    torch.manual_seed(0)
    assert ClassifierHead(6, 4, hidden=5)(torch.randn(3, 6)).shape == (3, 4)


def test_cross_modal_attention_shape_and_stored_attention():
    torch.manual_seed(0)
    attention = CrossModalAttention(8, n_regions=7, n_modalities=2, heads=2)
    tokens = torch.randn(3, 2, 7, 8)
    assert attention(tokens).shape == (3, 14, 8)
    assert attention.last_attention is None
    attention.store_attention = True
    attention.eval()
    attention(tokens)
    assert attention.last_attention.shape == (14, 14)
    assert not attention.last_attention.requires_grad
    torch.testing.assert_close(attention.last_attention.sum(1), torch.ones(14))


def test_attention_mixes_modalities(rng, graphs, batches):
    model = make_connex().eval()
    other_fc = GraphTransform("fisher_z", k=3).fit(fc_matrices(rng, N_SUBJECTS, N_REGIONS))
    new_fc = other_fc.transform(fc_matrices(rng, 3, N_REGIONS))
    changed = {"sc": batches["sc"], "fc": collate(new_fc, [0, 1, 2])}
    with torch.no_grad():
        before, after = model(batches), model(changed)
    torch.testing.assert_close(before["sc"], after["sc"])
    assert not torch.allclose(before["fused"], after["fused"])
    assert not torch.allclose(before["fc"], after["fc"])


def test_edge_mask_values():
    mask = EdgeMask(N_REGIONS)
    matrix = mask.matrix()
    assert matrix.shape == (N_REGIONS, N_REGIONS)
    torch.testing.assert_close(matrix, matrix.T)
    assert (matrix.diagonal() == 0).all()
    off_diagonal = matrix[~torch.eye(N_REGIONS, dtype=torch.bool)]
    assert torch.allclose(off_diagonal, torch.full_like(off_diagonal, 0.9), atol=0.01)
    pairs = torch.tensor([1 * N_REGIONS + 4, 4 * N_REGIONS + 1, 2 * N_REGIONS + 2])
    with torch.no_grad():
        mask.logits[mask.pair_to_logit[pairs[0]]] = -1.0
    values = mask(pairs)
    assert values[0] == values[1] == torch.sigmoid(torch.tensor(-1.0))
    assert values[2] == 1.0  # a self-pair is not masked
    assert mask.penalty().ndim == 0 and 0 < mask.penalty() < 1


def test_edge_mask_frozen_by_default_then_trainable(batches):
    model = make_connex(edge_mask=True)
    assert set(model.edge_masks) == {"sc", "fc"}
    assert not any(p.requires_grad for p in model.edge_masks.parameters())
    model(batches)["fused"].sum().backward()
    assert all(p.grad is None for p in model.edge_masks.parameters())

    model.zero_grad()
    model.edge_masks.requires_grad_(True)
    logits = model(batches)
    penalty = sum(mask.penalty() for mask in model.edge_masks.values())
    (joint_loss(logits, torch.tensor([0, 1, 0]), {"sc": 1.0, "fc": 1.0, "fused": 1.0}) + penalty).backward()
    for mask in model.edge_masks.values():
        assert mask.logits.grad is not None and mask.logits.grad.abs().sum() > 0

    importance = model.edge_importance()
    assert set(importance) == {"sc", "fc"}
    assert importance["fc"].shape == (N_REGIONS, N_REGIONS)
    np.testing.assert_array_equal(importance["fc"], importance["fc"].T)
    assert make_connex().edge_importance() == {}


def test_joint_loss_is_weighted_cross_entropy():
    torch.manual_seed(0)
    logits = {"sc": torch.randn(5, 3), "fc": torch.randn(5, 3), "fused": torch.randn(5, 3)}
    target = torch.tensor([0, 2, 1, 1, 0])
    weights = {"sc": 0.3, "fc": 0.2, "fused": 1.5, "unused": 9.0}
    expected = (0.3 * F.cross_entropy(logits["sc"], target) + 0.2 * F.cross_entropy(logits["fc"], target)
                + 1.5 * F.cross_entropy(logits["fused"], target))
    torch.testing.assert_close(joint_loss(logits, target, weights), expected)
    with pytest.raises(ValueError, match="No loss weight for head.*fc"):
        joint_loss(logits, target, {"sc": 1.0, "fused": 1.0})


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_batch_permutation(backbone, graphs):
    model = make_connex(backbone, edge_mask=backbone != "sage").eval()
    order = [3, 0, 4, 1]
    permuted = [2, 0, 3, 1]
    with torch.no_grad():
        logits = model({name: collate(g, order) for name, g in graphs.items()})
        shuffled = model({name: collate(g, [order[i] for i in permuted]) for name, g in graphs.items()})
    for name in logits:
        torch.testing.assert_close(shuffled[name], logits[name][permuted], rtol=1e-4, atol=1e-5)


def test_learns_a_class_encoded_in_one_fc_edge(rng):
    n_subjects = 24
    labels = np.arange(n_subjects) % 2
    fc = rng.uniform(-0.3, 0.3, size=(n_subjects, N_REGIONS, N_REGIONS))
    fc = (fc + fc.transpose(0, 2, 1)) / 2
    fc[:, 1, 4] = fc[:, 4, 1] = np.where(labels == 1, 0.7, -0.7)
    fc[:, np.arange(N_REGIONS), np.arange(N_REGIONS)] = 1.0
    graphs = subject_graphs(sc_matrices(rng, n_subjects, N_REGIONS), fc)
    batches = {name: collate(g, np.arange(n_subjects)) for name, g in graphs.items()}
    target = torch.from_numpy(labels)
    model = make_connex(hidden=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    weights = {"sc": 0.5, "fc": 0.5, "fused": 1.0}
    for _ in range(60):
        optimizer.zero_grad()
        joint_loss(model(batches), target, weights).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(batches)["fused"].argmax(1) == target).float().mean().item()
    assert accuracy >= 0.9


def test_bad_inputs(graphs, batches):
    with pytest.raises(ConfigError, match=r"'backbone' must be one of \{'gcn', 'gat', 'gin', 'sage'\}; 'gxn' was"):
        ConneX(N_REGIONS, {"sc": N_REGIONS}, backbone="gxn")
    with pytest.raises(ConfigError, match="'backbone' must be one of"):
        GraphBackbone(N_REGIONS, HIDDEN, kind="mlp")
    model = make_connex()
    with pytest.raises(ValueError, match=r"Expected graphs for modalities \['sc', 'fc'\]; got \['sc'\]"):
        model({"sc": batches["sc"]})
    with pytest.raises(ValueError, match="Expected graphs for modalities"):
        model({"sc": batches["sc"], "fc": batches["fc"], "dti": batches["fc"]})
    with pytest.raises(ValueError, match="built for 6 regions"):
        ConneX(6, {"sc": N_REGIONS, "fc": N_REGIONS}, **SMALL)(batches)
    with pytest.raises(ValueError, match="same subjects"):
        model({"sc": batches["sc"], "fc": collate(graphs["fc"], [0, 1])})
    with pytest.raises(ConfigError, match="sage"):
        ConneX(N_REGIONS, {"sc": N_REGIONS}, backbone="sage", edge_mask=True)
    with pytest.raises(ConfigError, match="divisible"):
        ConneX(N_REGIONS, {"sc": N_REGIONS}, hidden=10, attention_heads=4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_connex_on_cuda(batches):
    model = make_connex("gat", edge_mask=True).to("cuda")
    model.edge_masks.requires_grad_(True)
    logits = model({name: batch.to("cuda") for name, batch in batches.items()})
    assert all(value.device.type == "cuda" for value in logits.values())
    target = torch.tensor([0, 1, 1], device="cuda")
    joint_loss(logits, target, {"sc": 1.0, "fc": 1.0, "fused": 1.0}).backward()
    assert model.edge_masks["fc"].logits.grad is not None


def test_ensemble_averages_the_members_logits(batches):
    members = [make_connex(), make_connex(dropout=0.0)]
    torch.manual_seed(1)
    for p in members[1].parameters():
        p.data += 0.1 * torch.randn_like(p)
    ensemble = Ensemble(members).eval()
    outs = [m.eval()(batches) for m in members]
    for head, value in ensemble(batches).items():
        torch.testing.assert_close(value, (outs[0][head] + outs[1][head]) / 2)
    assert ensemble.edge_importance() == {}
