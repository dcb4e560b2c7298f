"""User models for studies: ``[model] factory = "pkg.module:build"`` or
``[model] circuit = "my.qasm"`` (with the built-in head).

Both become modules the study can drive like its own models: ``.quantum`` (the QuantumLayer
whose requests are labelled and charged), ``.set_phase``, ``.backend``, ``.config`` (so
checkpoints rebuild them). ``blocks()`` / ``groups()`` are used when the user's module has
them; a method that needs them on a module without them stops with a message naming what to
add, before any work.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..autograd.layer import QuantumLayer
from ..core.exceptions import InvalidRequestError, UnsupportedFeatureError

FACTORY, CIRCUIT = "factory:", "circuit:"


def is_custom(name: str | None) -> bool:
    """Whether a model name refers to a user factory or a circuit file."""
    return bool(name) and (name.startswith(FACTORY) or name.startswith(CIRCUIT))


def load_factory(target: str):
    """``"pkg.module:build"`` → the callable, with errors that say which part failed."""
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr:
        raise InvalidRequestError(f"model factory must be 'pkg.module:callable', got {target!r}")
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise InvalidRequestError(f"model factory {target!r}: cannot import {module!r} ({exc})") from None
    fn = getattr(mod, attr, None)
    if not callable(fn):
        raise InvalidRequestError(f"model factory {target!r}: {module} has no callable {attr!r}")
    return fn


class FactoryModel(nn.Module):
    """A user's module (from a factory) with the hooks the study needs."""

    def __init__(self, inner: nn.Module, config, source: str) -> None:
        super().__init__()
        self.inner = inner
        self.config = config
        self.source = source
        layers = [m for m in inner.modules() if isinstance(m, QuantumLayer)]
        if len(layers) != 1:
            raise InvalidRequestError(
                f"model factory {source!r} returned a module with {len(layers)} QuantumLayers; "
                "a study model has exactly one (its requests are what the study charges)"
            )
        self.quantum = layers[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)

    def _need(self, what: str):
        fn = getattr(self.inner, what, None)
        if fn is None:
            hint = ("blocks() -> [(name, module), ...] input→output (CF-k / EU-k retrain the last k)"
                    if what == "blocks" else "groups() -> {name: [parameters]}")
            raise UnsupportedFeatureError(
                f"this unlearning method needs model.{what}(), and the model from factory {self.source!r} "
                f"({type(self.inner).__name__}) does not define it; add {hint}"
            )
        return fn()

    def blocks(self) -> list[tuple[str, nn.Module]]:
        return self._need("blocks")

    def groups(self) -> dict[str, list[nn.Parameter]]:
        return self._need("groups")

    def set_phase(self, phase: str) -> None:
        self.quantum.phase = phase

    @property
    def backend(self):
        return self.quantum.backend


def build_custom(name: str, backend, *, gradient: str, shots: Any, grad_shots: Any, n_qubits: int | None,
                 n_classes: int | None, seed: int | None, step_shots=None, extra: dict | None = None,
                 config_cls=None, input_range: float | None = None, **_: Any) -> nn.Module:
    """The model named ``factory:pkg.module:build`` or ``circuit:/path/file.qasm``.

    ``extra``: for circuits, ``inputs`` (required) and ``weights`` (optional) parameter
    names; for factories, ``n_inputs`` (features per sample) passed to the factory.
    """
    from .model import HybridModel, ModelConfig
    from .scaling import InputScaler

    config_cls = config_cls or ModelConfig
    extra = dict(extra or {})
    if seed is not None:
        torch.manual_seed(seed)
    if gradient == "backprop" and not backend.capabilities.backprop:
        gradient = "parameter-shift"
    n_classes = n_classes or 3
    if name.startswith(CIRCUIT):
        from ..circuits import from_qasm3

        path = Path(name[len(CIRCUIT):])
        try:
            text = path.read_text()
        except OSError as exc:
            raise InvalidRequestError(f"model circuit {path}: cannot be read ({exc.strerror})") from None
        if not extra.get("inputs"):
            raise InvalidRequestError(
                f"model circuit {path}: name its per-sample parameters, e.g. [model] inputs = [\"x0\", \"x1\"]"
            )
        circuit = from_qasm3(text, inputs=extra["inputs"], weights=extra.get("weights"), name=path.stem)
        if n_qubits is not None and n_qubits != circuit.n_qubits:
            raise InvalidRequestError(f"model circuit {path} has {circuit.n_qubits} qubits, the config says {n_qubits}")
        if extra.get("n_inputs") is not None and extra["n_inputs"] != circuit.n_inputs:
            raise InvalidRequestError(
                f"model circuit {path} reads {circuit.n_inputs} inputs {extra['inputs']}, the data has "
                f"{extra['n_inputs']} features"
            )
        extra["sha256"] = hashlib.sha256(text.encode()).hexdigest()
        config = config_cls(name, circuit.n_qubits, 0, "ring", n_classes, None, gradient, shots, grad_shots, extra,
                            input_range=input_range)
        qlayer = QuantumLayer(circuit, backend, gradient=gradient, shots=None if gradient == "backprop" else shots,
                              grad_shots=grad_shots, seed=seed, step_shots=step_shots)
        # The built-in head of hqml-iris, sized by the circuit's outputs.
        head = nn.Sequential(nn.Linear(qlayer.n_outputs, 16), nn.ReLU(), nn.Linear(16, n_classes))
        # Tabular features become angles as in the built-in models: scaled to [−a, a] with
        # statistics fitted on the rows this model trains on.
        scaler = None if input_range is None else InputScaler(circuit.n_inputs, input_range)
        return HybridModel(config, None, qlayer, head, scaler)
    target = name[len(FACTORY):]
    fn = load_factory(target)
    offered = {"backend": backend, "n_inputs": extra.get("n_inputs"), "n_classes": n_classes,
               "gradient": gradient, "shots": None if gradient == "backprop" else shots,
               "grad_shots": grad_shots, "seed": seed}
    params = inspect.signature(fn).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in offered.items() if takes_all or k in params}
    if "backend" not in kwargs:
        raise InvalidRequestError(f"model factory {target!r} must accept a 'backend' argument")
    inner = fn(**kwargs)
    if not isinstance(inner, nn.Module):
        raise InvalidRequestError(f"model factory {target!r} returned {type(inner).__name__}, expected a torch nn.Module")
    config = config_cls(name, inner_qubits(inner), 0, "ring", n_classes, None, gradient, shots, grad_shots, extra)
    return FactoryModel(inner, config, target)


def inner_qubits(module: nn.Module) -> int:
    layers = [m for m in module.modules() if isinstance(m, QuantumLayer)]
    return layers[0].circuit.n_qubits if layers else 0
