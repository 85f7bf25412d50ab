"""Template data (see executor/templates/__init__.py), not a module to import."""
