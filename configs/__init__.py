"""ml_collections configs: one per dataset, each importing `default`."""
