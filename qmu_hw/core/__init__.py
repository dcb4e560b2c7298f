"""numpy + stdlib only: circuit IR, observables, the backend contract, budgets, journal."""
