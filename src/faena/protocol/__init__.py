"""The worker protocol: how remote ``faena worker`` agents talk to servers (gRPC, versioned).

``v1/worker.proto`` is the definition; ``v1/worker_pb2*.py`` are generated from it by
``scripts/gen-proto`` and committed. ``server`` serves it beside the HTTP API.
"""
