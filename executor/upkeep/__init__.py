"""Housekeeping jobs: log and run retention, image garbage collection."""
