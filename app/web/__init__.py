"""Routers: pages (HTML), the JSON API under /api/v1, and the error handlers."""
