"""``python -m faena`` is the ``faena`` command."""

from faena.cli import main

main()
