"""Projects: a labelling campaign with its own redundancy and gold rate."""
