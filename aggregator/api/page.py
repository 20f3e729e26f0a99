"""The operator page (server-rendered; works without JavaScript). Filled in below."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["operators"], include_in_schema=False)
