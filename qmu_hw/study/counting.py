"""A counting backend: the study's request schedule without simulating or submitting.

:class:`CountingBackend` answers every request with cheap deterministic values in [-1, 1]
(and a plausible stderr for sampled requests) but goes through the same
:meth:`BaseBackend.estimate` as every adapter: the same validation, the same shots charged
per request (rows x shots x measurement groups), the same provider tasks per request
(``AdapterInfo.tasks_for``, what the adapter declares), the same :func:`price` and
:func:`billed_seconds` of the profile's ``[cost]``, recorded in a :class:`ShotLedger`. The
study's dry run (:mod:`.dry_run`) puts it in place of every engine.

It never constructs a remote adapter (no SDK session, no credentials, no network): its
capabilities then come from the profile. For a local profile it reads them from the real
adapter (cheap to build; it is never asked anything), so the dry run takes the backprop path
where the study does.
"""

from __future__ import annotations

import time

import numpy as np

from ..core.backend import BaseBackend, RunOutput, adapter_info, billed_seconds, price
from ..core.contract import Capabilities, EstimateRequest
from ..core.ledger import ShotBudget
from .grid import profile_of
from .tasks import Backends


def _capabilities(profile, shots, seed) -> Capabilities:
    info = adapter_info(profile)
    if not info.remote and not info.missing:
        from ..adapters.registry import get_backend

        try:
            return get_backend(profile, shots=shots, seed=seed).capabilities
        except Exception:  # an option the local adapter refuses: the profile's own limits below
            pass
    lim = profile.limits
    return Capabilities(exact=True, sampling=True, noise=info.noise, max_qubits=int(lim.get("max_qubits", 1000)),
                        max_circuits_per_job=lim.get("max_circuits_per_job"), backprop=False)


def _fake_values(params: np.ndarray, n_obs: int) -> np.ndarray:
    """``(B, O)`` values cos(params @ W): deterministic, in [-1, 1], varying with the params
    (so the classical parts see inputs that change, as with a real engine)."""
    W = np.random.default_rng(params.shape[1] * 7919 + n_obs).normal(0.0, 0.5, (params.shape[1], n_obs))
    return np.cos(params @ W)


class CountingBackend(BaseBackend):
    """Counts like the adapter of ``profile``; computes nothing."""

    def __init__(self, profile, *, shots=None, seed=None, ledger=None, budget=None, capabilities=None) -> None:
        super().__init__(profile, shots=shots, seed=seed, ledger=ledger, budget=budget)
        self.capabilities = capabilities or _capabilities(profile, shots, seed)
        self._info = adapter_info(profile)

    def _run(self, request: EstimateRequest) -> RunOutput:
        vals = _fake_values(request.params, len(request.observables))
        exact = request.shots is None
        circuits = request.batch_size * (1 if exact else self.n_groups(request))
        shots = 0 if exact else self.shots_charged(request)
        # provider tasks of this one request, as the adapter declares them (the estimate's rule)
        tasks = max(1, int(np.ceil(self._info.tasks_for(circuits, 1, request.shots))))
        err = np.zeros_like(vals) if exact else np.sqrt((1 - vals ** 2) / request.row_shots[:, None])
        return RunOutput(vals, err, "exact" if exact else "sampled", circuits, submissions=tasks,
                         qpu_seconds=billed_seconds(self.profile.cost, shots, tasks),
                         cost=price(self.profile.cost, shots, tasks))


class DifferentiableCountingBackend(CountingBackend):
    """The counting backend of an engine the study trains by backprop (exact, differentiable):
    one exact evaluation of B rows per call, charged as the engine's ``_record_backprop``."""

    def torch_expectation(self, circuit, inputs, weights, observables=None, phase: str = "train"):
        import torch

        obs = self._backprop_observables(circuit, observables)
        t0 = time.perf_counter()
        g = torch.Generator().manual_seed(inputs.shape[1] * 7919 + len(obs))
        wi = torch.randn(inputs.shape[1], len(obs), generator=g, dtype=torch.float64) * 0.5
        ww = torch.randn(weights.numel(), len(obs), generator=g, dtype=torch.float64) * 0.5
        out = torch.cos(inputs.to(torch.float64) @ wi + weights.reshape(-1).to(torch.float64) @ ww)
        self._record_backprop(phase, inputs.shape[0], t0)
        return out


class CountingBackends(Backends):
    """The study's :class:`~.tasks.Backends` with counting backends and no caps: the dry run
    measures what the plan needs; the caps are checked against that afterwards."""

    def __init__(self, cfg) -> None:
        super().__init__(cfg, journal=None)
        self.budget = ShotBudget()

    def get(self, name: str, shots: int | None, seed: int):
        key = (name, shots, seed)
        if key not in self._made:
            prof = profile_of(name)
            caps = _capabilities(prof, shots, seed)
            cls = DifferentiableCountingBackend if caps.backprop else CountingBackend
            self._made[key] = cls(prof, shots=shots, seed=seed, ledger=self.ledger, budget=ShotBudget(),
                                  capabilities=caps)
        return self._made[key]
