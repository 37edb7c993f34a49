"""REST API of the iot app (a django-ninja router mounted by config/api.py)."""

from ninja import Router

router = Router(tags=["iot"])
