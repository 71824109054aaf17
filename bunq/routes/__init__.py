"""HTTP routes of the front, one module per group of the spec's endpoint summary."""
