"""Plain dataclasses, store ABCs and domain errors: the contract the rest of ydc is built on.

Nothing here imports SQLAlchemy or FastAPI (an import-linter contract checks it).
"""
