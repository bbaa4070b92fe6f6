"""The read API and live dashboard (FastAPI), reading the Redis read model only."""

from __future__ import annotations

from alphaspt.api.app import create_app, make_redis_client, run

__all__ = ["create_app", "make_redis_client", "run"]
