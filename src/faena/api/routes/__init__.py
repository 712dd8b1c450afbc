"""Route groups, each built around the services it calls."""
