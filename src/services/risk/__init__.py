"""The firm-wide risk engine service: gRPC on :50051, operations HTTP on :8080."""
