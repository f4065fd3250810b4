"""What operations see: Prometheus gauges read from the store, and the HTTP port."""
