"""The sandbox both runs and builds put plugin code in: the profile, pid 1, the import check."""
