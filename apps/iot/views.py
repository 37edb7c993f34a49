"""Pages of the device twins: the list (live badges, create form) and one device."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from .devices import get_device_stub


def device_list(request: HttpRequest) -> HttpResponse:
    """Every device with its version and a live online/offline badge."""
    return render(request, "iot/list.html")


def device_page(request: HttpRequest, device_id: str) -> HttpResponse:
    """One device: twin, desired editor, delta, telemetry chart, simulated device."""
    try:
        get_device_stub(device_id)
    except LookupError:
        raise Http404("no such device") from None
    context = {"device_id": device_id, "heartbeat_timeout": settings.IOT_HEARTBEAT_TIMEOUT}
    return render(request, "iot/device.html", context)
