"""``QuantumLayer``: a torch module whose forward is one backend request, backward one more."""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.circuit import Circuit
from ..core.contract import EstimateRequest, check_seed, check_shots
from ..core.exceptions import InvalidRequestError, UnsupportedFeatureError
from ..core.observables import as_observables
from .allocation import StepShots
from .shift import needed_slots, shift_plan
from .spsa import spsa_plan

GRADIENTS = ("backprop", "parameter-shift", "spsa")
_BACKEND_DEFAULT = "backend"


class _QuantumFunction(torch.autograd.Function):
    """Forward: one request for all rows. Backward: one request for all shifted rows."""

    @staticmethod
    def forward(ctx, inputs: torch.Tensor, weights: torch.Tensor, layer: QuantumLayer, need: tuple):
        # ``need`` is decided by the caller: grad mode is always off inside forward().
        params = layer._params(inputs, weights)
        shots = layer._forward_shots(params.shape[0], *need)
        values = layer._estimate(layer.circuit, params, shots, layer.phase)
        ctx.layer = layer
        ctx.params = params
        ctx.phase = layer.phase
        ctx.forward = (values, shots)
        ctx.save_for_backward(inputs, weights)
        return torch.as_tensor(values, dtype=inputs.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        inputs, weights = ctx.saved_tensors
        layer: QuantumLayer = ctx.layer
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        up = grad_out.detach().to(torch.float64).cpu().numpy()
        jac = layer._jacobian(ctx.params, need_x, need_w, ctx.phase, ctx.forward, up)  # (B, O, P)
        g = np.matmul(up[:, None, :], jac)[:, 0]  # (B, P); a matmul, not numpy's slow einsum loop
        n_in = layer.circuit.n_inputs
        grad_x = torch.as_tensor(g[:, :n_in], dtype=inputs.dtype) if need_x else None
        grad_w = (
            torch.as_tensor(g[:, n_in:].sum(axis=0), dtype=weights.dtype).reshape(weights.shape)
            if need_w
            else None
        )
        return grad_x, grad_w, None, None


def _check_finite(inputs: torch.Tensor, weights: torch.Tensor) -> None:
    """NaN/inf in the inputs or weights would give NaN outputs on the backprop path."""
    for name, t in (("inputs", inputs), ("weights", weights)):
        bad = ~torch.isfinite(t.detach())
        if bool(bad.any()):
            where = tuple(int(i) for i in bad.nonzero()[0])
            raise InvalidRequestError(
                f"QuantumLayer {name} must be finite; got {t.detach()[where].item()} at index {where} "
                f"({int(bad.sum())} non-finite values)"
            )


class QuantumLayer(nn.Module):
    """A parametrised circuit as a torch layer: ``(B, n_inputs) -> (B, O)``.

    Args:
        circuit: the circuit; its first ``n_inputs`` parameters are the layer inputs, the
            rest are the trainable ``weights`` (shape ``circuit.weight_shape``).
        backend: any backend from :func:`qmu_hw.get_backend`.
        gradient: ``"parameter-shift"`` (every backend), ``"spsa"`` (every backend, two
            evaluations per row) or ``"backprop"`` (differentiable exact engines only).
        shots: shots per row for the forward pass; ``None`` = exact; by default the
            backend's default shots.
        grad_shots: shots per row for gradient evaluations; by default ``shots``.
        seed: seeds the k-th sampled request with ``seed + k`` (reproducible runs).
        observables: Pauli terms to measure (default: the circuit's own ``observables``, else Z on
            every qubit).
        phase: ledger label of the requests (``train``, ``eval``, ``unlearn/<m>``, ...).
        spsa_epsilon: SPSA perturbation size.
        step_shots: a :class:`StepShots` total per training step, split over the forward
            rows and the gradient rows (uniformly or by estimated variance); replaces
            ``shots``/``grad_shots``.
    """

    def __init__(
        self,
        circuit: Circuit,
        backend: Any,
        gradient: str = "parameter-shift",
        shots: int | None | str = _BACKEND_DEFAULT,
        grad_shots: int | None | str = _BACKEND_DEFAULT,
        seed: int | None = None,
        observables=None,
        phase: str = "train",
        spsa_epsilon: float = 0.1,
        step_shots: StepShots | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(circuit, Circuit):
            raise InvalidRequestError(f"circuit must be a qmu_hw Circuit, got {type(circuit).__name__}")
        if gradient not in GRADIENTS:
            raise InvalidRequestError(f"unknown gradient {gradient!r}; expected one of {GRADIENTS}")
        caps = backend.capabilities
        if circuit.n_qubits > caps.max_qubits:
            raise InvalidRequestError(
                f"backend {backend.name!r} allows at most {caps.max_qubits} qubits, "
                f"circuit {circuit.name!r} has {circuit.n_qubits}"
            )
        self.circuit = circuit
        self.backend = backend
        self.gradient = gradient
        self.shots = check_shots(backend.shots if shots == _BACKEND_DEFAULT else shots)
        profile_grad = getattr(getattr(backend, "profile", None), "grad_shots", None)
        if grad_shots == _BACKEND_DEFAULT:
            grad_shots = profile_grad if profile_grad is not None else self.shots
        self.grad_shots = check_shots(grad_shots, "grad_shots")
        if step_shots is not None and not isinstance(step_shots, StepShots):
            raise InvalidRequestError(f"step_shots must be a StepShots, got {type(step_shots).__name__}")
        self.step_shots = step_shots
        if gradient == "backprop":
            if not caps.backprop:
                raise UnsupportedFeatureError(
                    f"gradient='backprop' needs a differentiable exact engine; backend "
                    f"{backend.name!r} is not one. Use 'parameter-shift' or 'spsa'."
                )
            if self.shots is not None or step_shots is not None:
                raise UnsupportedFeatureError(
                    f"gradient='backprop' differentiates exact expectations; got shots={self.shots}. "
                    "Use shots=None or a shot-based gradient ('parameter-shift', 'spsa')."
                )
        if not spsa_epsilon > 0:
            raise InvalidRequestError(f"spsa_epsilon must be > 0, got {spsa_epsilon}")
        self.spsa_epsilon = float(spsa_epsilon)
        # An imported circuit's own measurements (from_pennylane) unless the caller names others.
        self.observables = as_observables(circuit.observables if observables is None else observables,
                                          circuit.n_qubits)
        self.phase = phase
        self.seed = check_seed(seed)
        self._requests = 0
        self._sigma2: dict[tuple, np.ndarray] = {}
        self._rng = np.random.default_rng(seed)
        shape = circuit.weight_shape or (circuit.n_weights,)
        self.weights = nn.Parameter(torch.rand(shape, dtype=torch.float64) * (2 * math.pi))

    def __deepcopy__(self, memo):
        # A copy (e.g. an unlearned model) runs on the same backend and charges the same
        # ledger; only the module state is copied.
        import copy

        memo[id(self.backend)] = self.backend
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return new

    @property
    def n_outputs(self) -> int:
        return len(self.observables)

    @contextmanager
    def phase_scope(self, phase: str):
        """Temporarily label requests with ``phase`` (e.g. ``"eval"``)."""
        old, self.phase = self.phase, phase
        try:
            yield self
        finally:
            self.phase = old

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        n_in = self.circuit.n_inputs
        squeeze = inputs.ndim == 1
        if squeeze:
            inputs = inputs[None, :]
        if inputs.ndim != 2 or inputs.shape[1] != n_in:
            raise InvalidRequestError(
                f"QuantumLayer expects inputs of shape (B, {n_in}), got {tuple(inputs.shape)}"
            )
        if not inputs.is_floating_point():
            inputs = inputs.to(torch.float64)
        if self.gradient == "backprop":
            _check_finite(inputs, self.weights)  # parameter shift refuses these in EstimateRequest
            out = self.backend.torch_expectation(
                self.circuit, inputs, self.weights, self.observables, self.phase
            ).to(inputs.dtype)
        else:
            grad_on = torch.is_grad_enabled()
            need = (grad_on and inputs.requires_grad, grad_on and self.weights.requires_grad)
            out = _QuantumFunction.apply(inputs, self.weights, self, need)
        return out[0] if squeeze else out

    # -- helpers used by the autograd function ------------------------------------------
    def _params(self, inputs: torch.Tensor, weights: torch.Tensor) -> np.ndarray:
        x = inputs.detach().to(torch.float64).cpu().numpy()
        w = weights.detach().to(torch.float64).cpu().numpy().reshape(-1)
        return np.concatenate([x, np.broadcast_to(w, (x.shape[0], w.size))], axis=1)

    def _next_seed(self) -> int | None:
        if self.seed is None:
            return None
        self._requests += 1
        return (self.seed + self._requests) % (2 ** 63)  # stays an int64-safe seed

    def _estimate(self, circuit: Circuit, params: np.ndarray, shots, phase: str) -> np.ndarray:
        req = EstimateRequest(
            circuit, params, self.observables, shots, None if shots is None else self._next_seed(), phase
        )
        return self.backend.estimate(req).values

    def _shift_terms(self, need_x: bool, need_w: bool) -> int:
        """Gradient circuits per row: 2 for SPSA, 2G' for parameter shift."""
        if not (need_x or need_w):
            return 0
        if self.gradient == "spsa":
            return 2
        return 2 * len(needed_slots(self.circuit, need_x, need_w))

    def _forward_shots(self, batch: int, need_x: bool, need_w: bool):
        if self.step_shots is None:
            return self.shots
        return self.step_shots.forward(batch, self._shift_terms(need_x, need_w))

    def _grad_shots(self, forward, terms: int, upstream: np.ndarray, key):
        if self.step_shots is None:
            return self.grad_shots
        return self.step_shots.gradient(upstream, forward[1], terms, self._sigma2.get(key))

    def _jacobian(self, params, need_x: bool, need_w: bool, phase: str, forward, upstream) -> np.ndarray:
        B, P = params.shape
        O = len(self.observables)
        grad_phase = f"{phase}/grad"
        terms = self._shift_terms(need_x, need_w)
        if terms == 0:
            return np.zeros((B, O, P))
        key = (self.gradient, need_x, need_w)
        shots = self._grad_shots(forward, terms, upstream, key)
        if self.gradient == "spsa":
            mask = np.zeros(P)
            mask[: self.circuit.n_inputs] = need_x
            mask[self.circuit.n_inputs :] = need_w
            plan = spsa_plan(params, mask, self._rng, self.spsa_epsilon)
            return plan.jacobian(self._estimate(self.circuit, plan.rows, shots, grad_phase))
        plan = shift_plan(self.circuit, params, needed_slots(self.circuit, need_x, need_w))
        values = self._estimate(self.circuit.slot_circuit, plan.rows, shots, grad_phase)
        # Per-term variance estimates for the next step's allocation.
        self._sigma2[key] = (1 - values.reshape(B, terms, O) ** 2).mean(axis=0)
        return plan.jacobian(values)[0]

    def extra_repr(self) -> str:
        return (
            f"circuit={self.circuit.name}, backend={self.backend.name}, gradient={self.gradient}, "
            f"shots={self.shots}, grad_shots={self.grad_shots}"
        )
