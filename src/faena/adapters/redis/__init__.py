"""Redis adapters: state shared by several faena servers (rate-limit buckets)."""
