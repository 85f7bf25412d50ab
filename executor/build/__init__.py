"""Building plugin images: the build context and the builder."""
