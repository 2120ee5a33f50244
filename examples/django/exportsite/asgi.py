"""ASGI entry point (uvicorn, daphne...): the async view then runs in the
server's own, already running event loop."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exportsite.settings")
application = get_asgi_application()
