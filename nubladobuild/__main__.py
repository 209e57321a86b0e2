"""Allow ``python -m nubladobuild``."""

from nubladobuild.cli import main

main()
