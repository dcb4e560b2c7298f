"""Study layer: the unlearning protocol, grid runner, results store, report."""
