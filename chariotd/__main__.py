"""`python -m chariotd`: the same as the `chariotd` command."""

from chariotd.main import main

main()
