"""Persistence: SQLAlchemy tables, the database engine, and the queries (one module per noun)."""
