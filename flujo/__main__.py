"""`python -m flujo` runs the command line."""

from flujo.cli import main

main()
