"""REST API of the collab_doc app (a django-ninja router mounted by config/api.py)."""

from ninja import Router

router = Router(tags=["collab_doc"])
