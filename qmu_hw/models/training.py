"""Training with early stopping on the VALIDATION split, evaluation and checkpoints."""

from __future__ import annotations

import contextlib
import contextvars
import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..core.exceptions import CorruptCheckpointError, InvalidRequestError
from ..data.tensors import Split
from .hybrid import HybridModel, ModelConfig, build_model


@dataclass
class TrainResult:
    best_epoch: int
    best_val_acc: float
    epochs_ran: int
    wall_time_s: float
    history: list[dict] = field(default_factory=list)


# The study's dry run (study.dry_run) counts every epoch: early stopping depends on the values
# a backend returns, so an upper bound of the request schedule must run every loop in full.
_EARLY_STOPPING: contextvars.ContextVar[bool] = contextvars.ContextVar("qmu_hw_early_stopping", default=True)


def early_stopping_on() -> bool:
    """Whether training loops may stop early (True unless inside ``early_stopping(False)``)."""
    return _EARLY_STOPPING.get()


@contextlib.contextmanager
def early_stopping(enabled: bool):
    """Within this block, ``fit`` and the unlearning loops stop early only if ``enabled``."""
    token = _EARLY_STOPPING.set(bool(enabled))
    try:
        yield
    finally:
        _EARLY_STOPPING.reset(token)


def batches(n: int, batch_size: int, rng: np.random.Generator | None):
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for i in range(0, n, batch_size):
        yield order[i : i + batch_size]


@torch.no_grad()
def predict_proba(model: torch.nn.Module, X: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Softmax outputs ``(N, C)`` in the order of ``X`` (aligned rows, never shuffled)."""
    was = model.training
    model.eval()
    out = torch.cat([torch.softmax(model(X[i : i + batch_size]), dim=1) for i in range(0, len(X), batch_size)])
    model.train(was)
    return out


def evaluate_accuracy(model: torch.nn.Module, split: Split) -> float:
    if len(split) == 0:
        return float("nan")
    return float((predict_proba(model, split.X).argmax(1) == split.y).float().mean())


def _val_scores(model, val: Split) -> tuple[float, float]:
    probs = predict_proba(model, val.X)
    acc = float((probs.argmax(1) == val.y).float().mean())
    loss = float(torch.nn.functional.nll_loss(torch.log(probs.clamp_min(1e-12)), val.y))
    return acc, loss


def _check_output_width(model, logits: torch.Tensor) -> None:
    """A model must emit one logit per class: cross-entropy would silently train 4 logits on
    3-class labels (and store metrics of a model with a phantom class)."""
    n_classes = getattr(getattr(model, "config", None), "n_classes", None)
    if logits.ndim != 2 or (n_classes is not None and logits.shape[1] != n_classes):
        source = getattr(model, "source", None) or getattr(getattr(model, "config", None), "name", "the model")
        raise InvalidRequestError(
            f"model {source!r} emits outputs of shape {tuple(logits.shape[1:])} per batch row; the dataset has "
            f"{n_classes} classes: expected one logit per class, shape ({n_classes},)"
        )


def fit(
    model: HybridModel,
    train: Split,
    val: Split,
    *,
    epochs: int = 100,
    lr: float = 1e-2,
    batch_size: int = 32,
    patience: int = 15,
    seed: int = 0,
    phase: str = "train",
    progress=None,
) -> TrainResult:
    """Adam on cross-entropy; keeps the weights of the best validation accuracy.

    Selection reads ``val`` only — never a test split (the paper selected on test). A model
    whose input scaler is not fitted yet gets it fitted on ``train`` here: each model's
    scaling comes from its own training rows (a teacher's from the training split, an
    oracle's from the retain set).
    """
    if len(train) == 0:
        raise InvalidRequestError("cannot train on an empty training set")
    scaler = getattr(model, "scaler", None)
    if scaler is not None and not scaler.is_fitted:
        scaler.fit(train.X)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    best = (-1.0, 0, copy.deepcopy(model.state_dict()), float("inf"))
    history, t0, since_best = [], time.perf_counter(), 0
    epoch = 0
    for epoch in range(1, epochs + 1):
        model.train()
        model.set_phase(phase)
        losses = []
        for idx in batches(len(train), batch_size, rng):
            if len(idx) < 2 and any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules()):
                continue  # BatchNorm cannot train on a single row
            opt.zero_grad()
            logits = model(train.X[idx])
            if epoch == 1 and not history and not losses:
                _check_output_width(model, logits)
            loss = torch.nn.functional.cross_entropy(logits, train.y[idx])
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.set_phase(f"{phase}/select")
        val_acc, val_loss = _val_scores(model, val)
        model.set_phase(phase)
        history.append({"epoch": epoch, "loss": float(np.mean(losses)) if losses else float("nan"),
                        "val_acc": val_acc, "val_loss": val_loss})
        if progress is not None:
            progress(epoch, epochs, val_acc)
        # Best validation accuracy; on a tie (small validation sets tie often) the lower loss.
        if (val_acc, -val_loss) > (best[0], -best[3]):
            best, since_best = (val_acc, epoch, copy.deepcopy(model.state_dict()), val_loss), 0
        else:
            since_best += 1
            if since_best >= patience and early_stopping_on():
                break
    model.load_state_dict(best[2])
    return TrainResult(best[1], best[0], epoch, time.perf_counter() - t0, history)


CHECKPOINT_FORMAT = 2  # weights-only .pt + JSON metadata beside it


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def save_checkpoint(model: HybridModel, path: str | Path, extra: dict | None = None) -> None:
    """Weights (a plain tensor state dict, loadable with ``weights_only=True``) in ``path``
    and the model config plus ``extra`` as JSON in ``<path>.json``; the backend is not saved,
    so a checkpoint is portable. Neither file holds a pickled object: a checkpoint read back
    from a shared or downloaded study folder is data, never code."""
    from dataclasses import asdict

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": CHECKPOINT_FORMAT, "config": asdict(model.config), "extra": extra or {}}
    text = json.dumps(meta, sort_keys=True)  # fails here (not at load) on a non-JSON config value
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    # Metadata first, weights last: the .pt is what marks a checkpoint as present, and each
    # file is replaced atomically, so a crash never leaves a half-written pair behind.
    for target, write in ((_meta_path(path), lambda t: t.write_text(text)), (path, lambda t: torch.save(state, t))):
        tmp = target.with_name(target.name + ".tmp")
        write(tmp)
        tmp.replace(target)


def read_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """``(metadata, state_dict)`` of a checkpoint, read as data only (no unpickling of
    objects). Anything unreadable, truncated or foreign raises :class:`CorruptCheckpointError`
    naming the path."""
    path = Path(path)
    try:
        meta = json.loads(_meta_path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CorruptCheckpointError(f"checkpoint {path} has no readable metadata {_meta_path(path).name} "
                                     f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT or not isinstance(meta.get("config"), dict):
        raise CorruptCheckpointError(f"checkpoint {path} is not a qmu-hw format-{CHECKPOINT_FORMAT} checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError (a payload), RuntimeError (truncated zip), EOFError, ...
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise CorruptCheckpointError(f"checkpoint {path} is unreadable as weights ({type(exc).__name__}: {first})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CorruptCheckpointError(f"checkpoint {path} does not hold a tensor state dict")
    return meta, state


def load_checkpoint(path: str | Path, backend, *, expect_model: str | None = None,
                    **overrides) -> tuple[HybridModel, dict]:
    """Rebuild a model on ``backend`` and load its weights; a checkpoint that does not fit
    the model it describes raises :class:`CorruptCheckpointError` (callers retrain).

    ``expect_model``: the model name the caller builds (a study's); a checkpoint naming
    another (e.g. a ``factory:`` the study never configured, whose import would run code)
    is refused before anything is built."""
    meta, state = read_checkpoint(path)
    try:
        cfg = ModelConfig(**meta["config"])
    except TypeError as exc:
        raise CorruptCheckpointError(f"checkpoint {path} has a foreign model config ({exc})") from None
    if expect_model is not None and cfg.name != expect_model:
        raise CorruptCheckpointError(f"checkpoint {path} describes model {cfg.name!r}, expected {expect_model!r}")
    kw = dict(gradient=cfg.gradient, shots=cfg.shots, grad_shots=cfg.grad_shots, n_qubits=cfg.n_qubits,
              n_layers=cfg.n_layers, entangler=cfg.entangler, n_classes=cfg.n_classes,
              image_size=cfg.image_size, input_range=cfg.input_range)
    if cfg.extra:  # user models (factory / circuit file) rebuild from their spec
        kw["extra"] = cfg.extra
    kw.update(overrides)
    model = build_model(cfg.name, backend, **kw)
    if getattr(model, "scaler", None) is not None and "scaler.lo" not in state:
        raise CorruptCheckpointError(f"checkpoint {path} predates per-model input scaling (no scaler statistics)")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # missing / unexpected keys, wrong shapes
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise CorruptCheckpointError(f"checkpoint {path} does not fit its model ({first})") from None
    return model, meta.get("extra") or {}
