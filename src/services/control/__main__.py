"""``python -m riskcore_services.control``: the same as ``riskcore serve control``."""
import sys

from riskcore_services.cli import main

sys.exit(main(["serve", "control", *sys.argv[1:]]))
