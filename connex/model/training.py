"""Training a graph model on one training fold: device, seeds, mixed precision, early stopping.

Shape letters: ``s`` subjects, ``c`` classes.

The validation subjects used for early stopping are carved from the training fold by the
caller (:func:`validation_split`); the test fold never reaches this module.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from connex.errors import check_choice
from connex.inputs.io import atomic_path
from connex.model.architectures import joint_loss
from connex.model.graphs import SubjectGraphs, collate
from connex.registry import MONITORS

log = logging.getLogger(__name__)


@dataclass
class TrainParams:
    """Optimisation settings (config ``model.training``).

    Attributes
    ----------
    epochs : int
        Maximum number of epochs.
    batch_size : int
    learning_rate, weight_decay : float
        AdamW settings.
    patience : int
        Epochs without a better validation score before stopping.
    monitor : {"auc", "loss"}
        Early-stopping score on the validation subjects: the fused head's ROC AUC (ties broken
        by the joint loss), or the joint loss alone. AUC by default: on the synthetic cohort the
        validation loss rose from the first epochs (over-confident heads) while the validation
        AUC kept improving for 20-30 epochs.
    loss_weights : dict
        Weight of each head's cross-entropy in the joint loss (``sc``, ``fc``, ``fused``).
    mask_epochs : int
        Epochs of the edge-mask fine-tuning phase (models with an edge mask only).
    mask_l1 : float
        Weight of the mask's sparsity penalty in that phase.
    device : str
        ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    mixed_precision : bool
        bfloat16 autocast on CUDA (ignored on CPU, where it would change the numbers).
    seed : int
    ensemble : int or "auto"
        Members of each graph model: 1 (one model), or ``k`` models, each early-stopped on its own
        fold of a k-fold of the training fold, whose logits are averaged; ``auto``: 5 on training
        folds under 200 subjects, else 1 (:func:`connex.evaluation.folds.ensemble_size`).
    """

    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-3
    patience: int = 20
    monitor: str = "auc"
    loss_weights: dict = field(default_factory=lambda: {"sc": 0.5, "fc": 0.5, "fused": 1.0})
    mask_epochs: int = 20
    mask_l1: float = 0.01
    device: str = "auto"
    mixed_precision: bool = True
    seed: int = 0
    ensemble: int | str = "auto"


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise the named device (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was requested but CUDA is not available (torch "
                           f"{torch.__version__}); use device: auto or cpu.")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so a rerun gives the same numbers on CPU."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def validation_split(y: np.ndarray, train_index: np.ndarray, *, fraction: float, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Split a training fold into (fit, validation) subject indices, stratified by class.

    At least one subject of each class goes to validation; raises ``ValueError`` when a class
    has fewer than two subjects in the training fold.
    """
    labels = y[train_index]
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < 2:
        raise ValueError(f"A training fold has {counts.min()} subject(s) of class {classes[counts.argmin()]}; "
                         "early stopping needs at least two of each class (one to fit, one to validate).")
    n_val = max(int(round(fraction * len(train_index))), len(classes))
    n_val = min(n_val, len(train_index) - len(classes))
    fit, val = train_test_split(train_index, test_size=n_val, stratify=labels, random_state=seed)
    return np.sort(fit), np.sort(val)


def _batches(indices: np.ndarray, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    order = rng.permutation(indices) if rng is not None else indices
    return [order[i: i + batch_size] for i in range(0, len(order), batch_size)]


def _forward(model, graphs: dict[str, SubjectGraphs], index: np.ndarray, device: torch.device, amp: bool):
    batch = {name: collate(g, index).to(device) for name, g in graphs.items()}
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
        logits = model(batch)
    return {k: v.float() for k, v in logits.items()}


@dataclass
class TrainResult:
    """The best model state and the learning curves."""

    state_dict: dict
    history: pd.DataFrame
    best_epoch: int


def train_model(model: torch.nn.Module, graphs: dict[str, SubjectGraphs], y: np.ndarray,
                fit_index: np.ndarray, val_index: np.ndarray, params: TrainParams, *,
                progress: bool = False, description: str = "") -> TrainResult:
    """Train ``model`` on subjects ``fit_index``, early-stopping on subjects ``val_index``
    (``params.monitor``).

    Models with edge masks (``model.edge_masks``) get a second phase: starting from the best
    state of the first, the masks are unfrozen and trained with an L1 penalty for
    ``mask_epochs`` while the backbones are fine-tuned; the model ends in the best state of
    that phase (so that the mask it reports is the one it predicts with). Otherwise it ends in
    the state with the best validation score.
    """
    check_choice("monitor", params.monitor, MONITORS)
    device = resolve_device(params.device)
    amp = params.mixed_precision and device.type == "cuda"
    seed_everything(params.seed)
    model.to(device)
    rng = np.random.default_rng(params.seed)
    target = torch.tensor(np.asarray(y), dtype=torch.long, device=device)
    history = []
    best = ((float("inf"),), copy.deepcopy(model.state_dict()), 0)  # (score to minimise,), state, epoch
    masks = getattr(model, "edge_masks", None)
    phases = [("train", params.epochs)]
    if masks is not None and len(masks):
        phases.append(("mask", params.mask_epochs))
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=sum(n for _, n in phases), desc=description or "training", leave=False)
    epoch = 0
    for phase, n_epochs in phases:
        if phase == "mask":
            model.load_state_dict(best[1])
            masks.requires_grad_(True)
            best = ((float("inf"),), best[1], best[2])
        optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                      lr=params.learning_rate, weight_decay=params.weight_decay)
        since_best = 0
        for _ in range(n_epochs):
            epoch += 1
            started = time.perf_counter()
            model.train()
            train_loss = 0.0
            for index in _batches(fit_index, params.batch_size, rng):
                optimiser.zero_grad(set_to_none=True)
                loss = joint_loss(_forward(model, graphs, index, device, amp), target[index], params.loss_weights)
                if phase == "mask":
                    loss = loss + params.mask_l1 * sum(m.penalty() for m in masks.values())
                loss.backward()
                optimiser.step()
                train_loss += loss.item() * len(index)
            val_loss, val_auc = evaluate(model, graphs, target, val_index, params, device, amp)
            history.append({"epoch": epoch, "phase": phase, "train_loss": train_loss / len(fit_index),
                            "val_loss": val_loss, "val_auc": val_auc,
                            "seconds": round(time.perf_counter() - started, 4)})
            if epoch % 10 == 0:
                log.info("%s epoch %d (%s): train loss %.4f, validation loss %.4f, AUC %.3f",
                         description or "model", epoch, phase, train_loss / len(fit_index), val_loss, val_auc)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(train=f"{train_loss / len(fit_index):.3f}", val=f"{val_loss:.3f}")
            score = (-val_auc, val_loss) if params.monitor == "auc" else (val_loss,)
            if _better(score, best[0]):
                best, since_best = (score, copy.deepcopy(model.state_dict()), epoch), 0
            else:
                since_best += 1
                if since_best >= params.patience:
                    break
    if bar is not None:
        bar.close()
    model.load_state_dict(best[1])
    if masks is not None:
        masks.requires_grad_(False)
    log.info("%s: best validation %s at epoch %d of %d.", description or "model",
             _describe(best[0], params.monitor), best[2], epoch)
    return TrainResult(state_dict=best[1], history=pd.DataFrame(history), best_epoch=best[2])


def _better(score: tuple, best: tuple) -> bool:
    """Lexicographic comparison with a small tolerance on the first entry."""
    if score[0] < best[0] - 1e-9:
        return True
    return abs(score[0] - best[0]) <= 1e-9 and len(score) > 1 and score[1] < best[1] - 1e-9


def _describe(score: tuple, monitor: str) -> str:
    return f"AUC {-score[0]:.3f} (loss {score[1]:.4f})" if monitor == "auc" else f"loss {score[0]:.4f}"


@torch.no_grad()
def evaluate(model, graphs, target, index, params: TrainParams, device, amp) -> tuple[float, float]:
    """(joint loss, fused-head ROC AUC) on subjects ``index``."""
    model.eval()
    total, scores = 0.0, []
    for batch in _batches(index, params.batch_size, None):
        logits = _forward(model, graphs, batch, device, amp)
        total += joint_loss(logits, target[batch], params.loss_weights).item() * len(batch)
        scores.append(torch.softmax(logits["fused"], 1)[:, 1].cpu())
    labels = target[index].cpu().numpy()
    auc = roc_auc_score(labels, torch.cat(scores).numpy()) if len(np.unique(labels)) == 2 else 0.5
    return total / len(index), float(auc)


@torch.no_grad()
def predict_proba(model: torch.nn.Module, graphs: dict[str, SubjectGraphs], index: np.ndarray,
                  params: TrainParams, *, head: str = "fused") -> np.ndarray:
    """Class probabilities ``(len(index), c)`` of one head for subjects ``index``."""
    device = resolve_device(params.device)
    amp = params.mixed_precision and device.type == "cuda"
    model.to(device).eval()
    out = [torch.softmax(_forward(model, graphs, batch, device, amp)[head], dim=1).cpu()
           for batch in _batches(np.asarray(index), params.batch_size, None)]
    return torch.cat(out).numpy()


def save_checkpoint(model: torch.nn.Module, target: str | Path) -> Path:
    """Save the model's state dict (tensors only: loadable with ``weights_only=True``)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(target) as tmp:
        torch.save(state, tmp)
    return Path(target)


def load_checkpoint(model: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """Load a state dict saved by :func:`save_checkpoint` (``weights_only=True``: no code runs)."""
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model
