"""Services around the riskcore kernel (risk engine, control plane, ingestion, monitoring)."""
