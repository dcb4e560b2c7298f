"""The noise the PTM engine represents: per-gate depolarizing + thermal relaxation, readout.

One description covers both the parametric ``depolarizing`` profiles (uniform values, the
same model ``aer.parametric_noise_model`` builds) and calibrated device noise (per-qubit and
per-edge values, see ``device_calibration``). After each gate the channel is
``thermal_relaxation ∘ depolarizing`` — Aer's ``depol.compose(relax)`` order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..core.exceptions import ProfileError
from .ptm import depolarizing_ptm, thermal_relaxation_ptm

VIRTUAL_GATES = ("RZ", "Z", "S", "SDG")  # frame changes on IBM devices: no duration, no error
INF = math.inf


@dataclass(frozen=True)
class PTMNoise:
    """Noise values; a tuple of length 1 applies to every qubit (times in ns).

    Attributes:
        p1: depolarizing parameter after each 1-qubit gate, per qubit.
        p2: ``((a, b), p)`` per coupled pair (either order), ``p2_default`` for other pairs.
        t1, t2: relaxation times per qubit (``inf``: none).
        time_1q: duration of a 1-qubit gate per qubit; ``time_2q`` per pair like ``p2``.
        readout: ``(p01, p10)`` per qubit: P(read 1 | 0), P(read 0 | 1).
        virtual_z: RZ/Z/S/SDG are noiseless frame changes (IBM devices).
    """

    p1: tuple = (0.0,)
    p2: tuple = ()
    p2_default: float = 0.0
    t1: tuple = (INF,)
    t2: tuple = (INF,)
    time_1q: tuple = (0.0,)
    time_2q: tuple = ()
    time_2q_default: float = 0.0
    readout: tuple = ((0.0, 0.0),)
    virtual_z: bool = False
    source: str = "parametric"

    @staticmethod
    def _at(values: tuple, q: int):
        return values[0] if len(values) == 1 else values[q]

    @staticmethod
    def _pair(table: tuple, default: float, a: int, b: int) -> float:
        for (x, y), v in table:
            if {x, y} == {a, b}:
                return v
        return default

    @property
    def has_relaxation(self) -> bool:
        return any(math.isfinite(t) for t in self.t1 + self.t2)

    @lru_cache(maxsize=1024)  # noqa: B019 - instances are frozen, few and long-lived
    def after_1q(self, name: str, q: int) -> np.ndarray:
        """``4 × 4`` PTM of the noise after a 1-qubit gate ``name`` on qubit q."""
        if self.virtual_z and name in VIRTUAL_GATES:
            return np.eye(4)
        r = depolarizing_ptm(self._at(self.p1, q), 1)
        t = self._at(self.time_1q, q)
        if t and self.has_relaxation:
            r = thermal_relaxation_ptm(self._at(self.t1, q), self._at(self.t2, q), t) @ r
        return r

    @lru_cache(maxsize=1024)  # noqa: B019
    def after_2q(self, a: int, b: int) -> np.ndarray:
        """``16 × 16`` PTM of the noise after a 2-qubit gate on (a, b) (a most significant)."""
        r = depolarizing_ptm(self._pair(self.p2, self.p2_default, a, b), 2)
        t = self._pair(self.time_2q, self.time_2q_default, a, b)
        if t and self.has_relaxation:
            th = [thermal_relaxation_ptm(self._at(self.t1, q), self._at(self.t2, q), t) for q in (a, b)]
            r = np.kron(th[0], th[1]) @ r
        return r

    def readout_of(self, q: int) -> tuple[float, float]:
        return tuple(self._at(self.readout, q))

    @property
    def readout_free(self) -> bool:
        return all(p == 0 and r == 0 for p, r in self.readout)

    def confusions(self, n: int) -> list[np.ndarray]:
        """Per-qubit ``M[read, prepared]`` for ``sampling.apply_readout``."""
        out = []
        for q in range(n):
            p01, p10 = self.readout_of(q)
            out.append(np.array([[1 - p01, p10], [p01, 1 - p10]]))
        return out


def parametric_noise(noise: dict, where: str) -> PTMNoise:
    """The ``depolarizing`` profile table (optionally with ``t1_us``/``t2_us``/``gate_time_ns``,
    2-qubit gates lasting 5 gate times) as the same model Aer builds from it."""
    kind = noise.get("kind", "none")
    if kind not in ("none", "depolarizing"):
        raise ProfileError(
            f"backend profile {where}: key 'noise.kind': the density-matrix engine represents "
            f"'none', 'depolarizing' and 'calibrated', got {kind!r}"
        )
    p1, p2, ro = (float(noise.get(k, 0.0)) for k in ("p1", "p2", "readout"))
    if not noise.get("t1_us"):
        return PTMNoise(p1=(p1,), p2_default=p2, readout=((ro, ro),))
    t1 = float(noise["t1_us"]) * 1e3
    t2 = float(noise.get("t2_us", noise["t1_us"])) * 1e3
    if t2 > 2 * t1:
        raise ProfileError(
            f"backend profile {where}: key 'noise.t2_us': T2 must be <= 2·T1 for thermal relaxation, "
            f"got T1={noise['t1_us']} us, T2={noise.get('t2_us')} us"
        )
    gate = float(noise.get("gate_time_ns", 50.0))
    return PTMNoise(p1=(p1,), p2_default=p2, t1=(t1,), t2=(t2,), time_1q=(gate,),
                    time_2q_default=5 * gate, readout=((ro, ro),))
