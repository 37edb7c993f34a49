"""REST API of the chat app (a django-ninja router mounted by config/api.py)."""

from ninja import Router

router = Router(tags=["chat"])
