"""Process concerns shared by every service: logging, HTTP ops endpoints,
authentication, gRPC call handling, tracing, profiling and shutdown."""
