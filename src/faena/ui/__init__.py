"""The dashboard at ``/ui``: server-rendered page shells (Jinja2) plus a little vanilla
JavaScript that calls the JSON API with the key kept in ``sessionStorage``. See
``docs/dashboard.md`` for how it is built and how to change it."""
