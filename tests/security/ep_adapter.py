"""An adapter offered by another package through the ``qmu_hw.adapters`` entry-point group
(no ``@register_adapter``: the entry point's name is its registered name)."""

from tests.core.toy_adapter import ToyBackend


class EntryPointToy(ToyBackend):
    pass
