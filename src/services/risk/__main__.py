"""``python -m riskcore_services.risk``: the same as ``riskcore serve risk``."""
import sys

from riskcore_services.cli import main

sys.exit(main(["serve", "risk", *sys.argv[1:]]))
