"""``python -m riskcore_services.monitor``: the same as ``riskcore serve monitor``."""
import sys

from riskcore_services.cli import main

sys.exit(main(["serve", "monitor", *sys.argv[1:]]))
