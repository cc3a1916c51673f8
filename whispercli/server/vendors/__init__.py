"""The other vendors' HTTP shapes, as pure functions: requests in, our job's data out, and
our job's data back into their bodies. No HTTP framework, no store: the routers call these."""
