"""Allow ``python -m rawisp``."""

from rawisp.cli import main

main()
