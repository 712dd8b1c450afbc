"""Plain-SQL migrations of the PostgreSQL store, applied in order by version (``NNNN_name.sql``)."""
