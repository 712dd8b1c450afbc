"""Blob stores: where artefacts' bytes live (a local directory, or S3-compatible storage)."""
