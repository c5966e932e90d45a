"""Renderers: the plan report, the explanation of one snapshot, the status of the state DB."""
