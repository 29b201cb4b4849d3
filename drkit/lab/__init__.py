"""The embedded lab: two loopback regions of real processes."""
