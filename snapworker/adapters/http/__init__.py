"""HTTP endpoints of the daemon: health and metrics."""
