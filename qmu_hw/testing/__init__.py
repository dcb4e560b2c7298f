"""Shipped test helpers: the backend conformance suite every adapter must pass."""

from .conformance import BackendConformance

__all__ = ["BackendConformance"]
