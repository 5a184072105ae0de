"""Use cases. Services talk to the store ABCs only and never import FastAPI."""
