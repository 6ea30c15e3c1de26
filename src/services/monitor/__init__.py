"""The monitor service: alert rules evaluated on the other services' events, delivered in milliseconds."""
