"""ASGI entry point: HTTP through Django, WebSockets through Channels routing.

Daphne implements no ASGI lifespan, so ``manage.py runserver`` starts the object host;
servers that do speak lifespan (uvicorn, hypercorn) start it through ``DurableLifespan``.
Static files are served by Django's ASGI static files handler from the apps' ``static/``
directories, with ``DEBUG`` off too, so the demo keeps its styles wherever it runs (a
real deployment puts them behind its proxy or WhiteNoise after ``collectstatic``).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from config.routing import websocket_urlpatterns  # noqa: E402
from durable_core.asgi import DurableLifespan  # noqa: E402

application = DurableLifespan(
    ProtocolTypeRouter(
        {
            "http": ASGIStaticFilesHandler(django_asgi_app),
            # Browsers must come from an allowed host; the session gives the user.
            "websocket": AllowedHostsOriginValidator(
                AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
            ),
        }
    )
)
