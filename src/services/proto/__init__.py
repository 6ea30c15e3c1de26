"""Generated gRPC stubs for proto/riskcore/v1 (regenerate with python proto/generate.py)."""
