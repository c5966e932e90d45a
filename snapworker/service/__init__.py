"""The service layer: one tick (observe -> plan -> apply), the executor, restore drills,
holds, leases, and the bootstrap that wires the adapters to them."""
