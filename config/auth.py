"""Logins of the demo project: the demo password only from this machine."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from config.management.commands.demo_superuser import DEMO_PASSWORD, DEMO_USERNAME, is_loopback
from durable_core.web import client_ip


class LocalDemoLoginGuard:
    """Placed before Django's model backend: the published demo login (admin/admin) is
    refused from a client that is not on a loopback address, so a demo database served
    behind a proxy or on a public bind does not open its admin to anyone (issue 16 §11).
    Every other login goes on to the next backend as usual. Not a ``BaseBackend``: with
    its ``get_user``, ``force_login`` would pick this backend for sessions, which then
    find no user; sessions are never this backend's."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if (
            username == DEMO_USERNAME
            and password == DEMO_PASSWORD
            and request is not None  # None: called from code, not over the network
            and not is_loopback(client_ip(request))
        ):
            raise PermissionDenied("the demo login works from this machine only")
        return None

    async def aauthenticate(self, request, username=None, password=None, **kwargs):
        """Django's async login (``aauthenticate``) asks the same (no I/O here)."""
        return self.authenticate(request, username=username, password=password, **kwargs)
