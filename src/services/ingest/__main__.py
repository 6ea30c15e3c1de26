"""``python -m riskcore_services.ingest``: the same as ``riskcore serve ingest``."""
import sys

from riskcore_services.cli import main

sys.exit(main(["serve", "ingest", *sys.argv[1:]]))
