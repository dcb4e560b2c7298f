"""Config-time backend checks: every local backend a study names is built (option typos,
noise the engine cannot simulate) and its qubit limit compared with the model, and cloud
profiles are checked against their adapter's options, all without opening a connection."""

from __future__ import annotations

import sys
from pathlib import Path

from ..core.exceptions import InvalidRequestError, QmuHwError
from ..core.profiles import resolve_profile
from .config_errors import _Reader
from .config_tables import DATASET_SHAPES


def check_backends(cfg, text: str = "") -> None:
    """Build every local backend the study names (options typos, noise the engine cannot
    simulate) and check its qubit limit against the model; for cloud profiles check the
    options against the adapter's schema and the profile's ``[limits]``, without connecting."""
    from ..adapters.registry import adapter_class, get_backend
    r = _Reader(text, cfg.path or "<config>")
    n_qubits = _model_qubits(cfg)
    where = {b: ("grid", "backends") for b in cfg.backends}
    where.update({b: ("grid", "surrogates") for b in cfg.surrogates.values()})
    if cfg.train_backend != "same":
        where.setdefault(cfg.train_backend, ("training", "train_backend"))
    for b, (section, key_) in where.items():
        try:
            prof = resolve_profile(b)
            if prof.is_cloud:
                cls = adapter_class(prof.adapter)
                allowed = getattr(cls, "OPTIONS", None) or getattr(sys.modules[cls.__module__], "OPTIONS", None)
                bad = sorted(set(prof.options) - set(allowed)) if allowed is not None else []
                if bad:
                    raise InvalidRequestError(f"backend {prof.name!r}: unknown option(s) {bad}; expected "
                                              f"{sorted(allowed)}")
                max_q = prof.options.get("max_qubits", prof.limits.get("max_qubits"))
            else:
                max_q = get_backend(b).capabilities.max_qubits
        except InvalidRequestError as exc:  # profile and option errors: already name the file/key
            raise r.err(section, key_, f"backend {b!r}: {exc}") from None
        if max_q is not None and n_qubits > int(max_q):
            raise r.err(section, key_, f"backend {b!r} allows at most {max_q} qubits; the model needs {n_qubits} "
                                       "([model] n_qubits)")


def _model_qubits(cfg) -> int:
    from .protocol import DEFAULT_QUBITS

    if str(cfg.model).startswith("circuit:"):
        return user_circuit(cfg, _Reader("", cfg.path or "<config>")).n_qubits
    if cfg.n_qubits is not None:
        return cfg.n_qubits
    kind, features, _ = DATASET_SHAPES[cfg.dataset]
    return features if kind == "tabular" else DEFAULT_QUBITS.get(cfg.dataset, 8)


def user_circuit(cfg, r):
    """The imported circuit of a ``circuit:`` model (parsed once here to check it early)."""
    from ..circuits import from_qasm3

    path = Path(cfg.model[len("circuit:"):])
    try:
        return from_qasm3(path.read_text(), inputs=list(cfg.tables.model.inputs),
                          weights=None if cfg.tables.model.weights is None else list(cfg.tables.model.weights),
                          name=path.stem)
    except (QmuHwError, ValueError) as exc:
        raise r.err("model", "circuit", f"{path}: {exc}") from None
