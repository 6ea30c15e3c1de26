"""``python -m riskcore_services.risk``: the same as ``riskcore serve risk``."""
import argparse
import sys

from riskcore_services.cli import _serve_risk, add_risk_options

parser = argparse.ArgumentParser(prog="python -m riskcore_services.risk",
                                 description="Run the riskcore risk engine service.")
add_risk_options(parser)
sys.exit(_serve_risk(parser.parse_args()))
