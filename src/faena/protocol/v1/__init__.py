"""Version 1 of the worker protocol (package ``faena.worker.v1``). Generated code lives here."""
