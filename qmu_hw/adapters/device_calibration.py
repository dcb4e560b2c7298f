"""Calibrated device noise for the PTM engine, derived from any Qiskit BackendV2.

The circuit's qubits are placed on a connected chain of the device exactly as the Aer adapter
places them (``aer.chain_layout``). From the backend's ``Target`` the derivation takes, per
chain qubit, T1/T2 (T2 capped at 2·T1), the single-qubit ``sx`` error and duration, the
readout error of ``measure`` (asymmetric when the target reports ``prob_meas1_prep0`` /
``prob_meas0_prep1``), and per chain edge the native 2-qubit gate's (``cz``/``ecr``/``cx``)
error and duration. Each IR gate is then followed by thermal relaxation over its duration
after a depolarizing channel whose parameter makes the pair's average gate infidelity equal
the reported error — the rule of ``qiskit_aer.noise.NoiseModel.from_backend``. RZ, Z, S and
S† are frame changes (no error, no duration); every other 1-qubit gate costs one ``sx``;
CZ/CNOT cost one native 2-qubit gate. A pair that is not a chain edge (the ring's closing
gate) gets the chain's mean 2-qubit error and duration: on hardware it would be routed
through SWAPs, which this model does not count.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.exceptions import InvalidRequestError
from .ptm import average_gate_fidelity, thermal_relaxation_ptm
from .ptm_noise import INF, PTMNoise

TWO_QUBIT_NATIVE = ("cz", "ecr", "cx")


def _depol_param(error: float, relax_ptm: np.ndarray, n_qubits: int) -> float:
    """Aer's ``_device_depolarizing_error`` parameter given the relaxation channel."""
    relax_fid = average_gate_fidelity(relax_ptm)
    relax_infid = 1 - relax_fid
    if not error or error <= relax_infid:
        return 0.0
    dim = 2**n_qubits
    error = min(error, dim / (dim + 1))
    p = dim * (error - relax_infid) / (dim * relax_fid - 1)
    return min(p, 4**n_qubits / (4**n_qubits - 1))


def _relax_times(target, q: int) -> tuple[float, float]:
    props = target.qubit_properties[q] if target.qubit_properties else None
    t1 = getattr(props, "t1", None)
    t2 = getattr(props, "t2", None)
    t1 = INF if t1 is None else t1 * 1e9
    t2 = 2 * t1 if t2 is None else min(t2 * 1e9, 2 * t1)
    return t1, t2


def calibrated_noise(backend, n_qubits: int, layout: list[int] | None = None) -> tuple[PTMNoise, list[int]]:
    """``(noise, layout)``: the device's calibration on ``n_qubits`` chain qubits (times in ns)."""
    from .aer import chain_layout

    target = backend.target
    if layout is None:
        layout = chain_layout(backend.coupling_map.get_edges(), n_qubits)
    names = set(target.operation_names)
    two = next((g for g in TWO_QUBIT_NATIVE if g in names), None)
    if "sx" not in names or two is None:
        raise InvalidRequestError(
            f"device {backend.name!r} reports no 'sx' or 2-qubit gate ({TWO_QUBIT_NATIVE}) calibration; "
            f"its operations are {sorted(names)}"
        )
    t1s, t2s, p1s, times, readout = [], [], [], [], []
    for q in layout:
        t1, t2 = _relax_times(target, q)
        prop = target["sx"][(q,)]
        dur = (prop.duration or 0.0) * 1e9
        relax = thermal_relaxation_ptm(t1, t2, dur) if dur else np.eye(4)
        t1s.append(t1)
        t2s.append(t2)
        times.append(dur)
        p1s.append(_depol_param(prop.error or 0.0, relax, 1))
        m = target["measure"][(q,)] if "measure" in names else None
        p01 = getattr(m, "prob_meas1_prep0", None) if m is not None else None
        p10 = getattr(m, "prob_meas0_prep1", None) if m is not None else None
        err = (m.error or 0.0) if m is not None else 0.0
        readout.append((err if p01 is None else p01, err if p10 is None else p10))
    p2, t2q = [], []
    for i in range(n_qubits):
        for j in range(i + 1, n_qubits):
            a, b = layout[i], layout[j]
            table = target[two]
            prop = table.get((a, b)) or table.get((b, a))
            if prop is None:
                continue
            dur = (prop.duration or 0.0) * 1e9
            relax = np.kron(*(thermal_relaxation_ptm(t1s[x], t2s[x], dur) for x in (i, j))) if dur else np.eye(16)
            p2.append(((i, j), _depol_param(prop.error or 0.0, relax, 2)))
            t2q.append(((i, j), dur))
    noise = PTMNoise(
        p1=tuple(p1s), p2=tuple(p2), p2_default=float(np.mean([p for _, p in p2])) if p2 else 0.0,
        t1=tuple(t1s), t2=tuple(t2s), time_1q=tuple(times), time_2q=tuple(t2q),
        time_2q_default=float(np.mean([t for _, t in t2q])) if t2q else 0.0,
        readout=tuple(readout), virtual_z=True,
        source=f"{backend.name} qubits {list(layout)}",
    )
    return noise, list(layout)


def aer_noise_model(noise: PTMNoise, n_qubits: int):
    """The same model as a ``qiskit_aer`` ``NoiseModel`` on virtual qubits 0..n-1, gate by IR
    gate (for validation: Aer's density matrix of the untranspiled circuit)."""
    from qiskit_aer.noise import (
        NoiseModel,
        ReadoutError,
        depolarizing_error,
        thermal_relaxation_error,
    )

    from .ptm_noise import VIRTUAL_GATES
    from .qiskit_convert import _1Q

    nm = NoiseModel(basis_gates=["rx", "ry", "rz", "h", "x", "y", "z", "s", "sdg", "cz", "cx"])

    def relax(q, t):
        t1, t2 = noise._at(noise.t1, q), noise._at(noise.t2, q)
        return thermal_relaxation_error(t1, t2, t) if t and math.isfinite(t1) else None

    noisy_1q = [qk for ir, qk in _1Q.items() if not (noise.virtual_z and ir in VIRTUAL_GATES)]
    for q in range(n_qubits):
        err = depolarizing_error(noise._at(noise.p1, q), 1)
        th = relax(q, noise._at(noise.time_1q, q))
        nm.add_quantum_error(err if th is None else err.compose(th), noisy_1q, [q])
        p01, p10 = noise.readout_of(q)
        if p01 or p10:
            nm.add_readout_error(ReadoutError([[1 - p01, p01], [p10, 1 - p10]]), [q])
    for a in range(n_qubits):
        for b in range(n_qubits):
            if a == b:
                continue
            err = depolarizing_error(noise._pair(noise.p2, noise.p2_default, a, b), 2)
            t = noise._pair(noise.time_2q, noise.time_2q_default, a, b)
            tha, thb = relax(a, t), relax(b, t)
            if tha is not None:
                err = err.compose(tha.expand(thb))
            nm.add_quantum_error(err, ["cz", "cx"], [a, b])
    return nm
