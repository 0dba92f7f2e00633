"""``python -m nascli <command> ...`` (used by torchrun)."""
from nascli.cli import main

main()
