"""WSGI entry point (runserver, gunicorn...). Async views run there too:
Django gives each one an event loop of its own."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exportsite.settings")
application = get_wsgi_application()
