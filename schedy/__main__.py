"""``python -m schedy`` runs the command line."""

from schedy.cli import main

main()
