"""HTTP API (FastAPI): one router per resource under ``routes/``."""
