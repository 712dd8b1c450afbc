"""The pure domain: jobs, states, retry policy, errors. No I/O, no imports of the rest of faena."""
