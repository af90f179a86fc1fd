"""Projects: a labelling campaign with its own label redundancy and gold rate."""
