"""Settings of the export example: no database, no sessions, no templates.

From the environment:
    EXPORT_REDIS_URL      the Redis export-worker uses (default redis://127.0.0.1:6379/0)
    EXPORT_PREFIX         its key prefix, EXPORT_PREFIX of the worker (default export)
    EXPORT_DEMO_SERVICE   lookup service of the demo job (default tether; empty: none)
    DJANGO_SECRET_KEY, DJANGO_DEBUG (1/0), DJANGO_ALLOWED_HOSTS (comma-separated)
"""

import importlib.util
import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

if importlib.util.find_spec("exportclient") is None:
    # Not installed (pip install clients/python): use the copy in this repository.
    sys.path.insert(0, str(BASE_DIR.parent.parent / "clients" / "python"))

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-key-for-the-example-only")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS",
                                           "127.0.0.1,localhost").split(",") if h]

INSTALLED_APPS = []
# No CsrfViewMiddleware: this JSON API uses no cookies. A real site puts its
# authentication here and checks who may read which export.
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "exportsite.urls"
WSGI_APPLICATION = "exportsite.wsgi.application"
ASGI_APPLICATION = "exportsite.asgi.application"
DATABASES = {}
USE_TZ = True

# Job documents may be large (the worker's EXPORT_MAX_JOB_BYTES is 64 MiB).
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024 * 1024

EXPORT_REDIS_URL = os.environ.get("EXPORT_REDIS_URL", "redis://127.0.0.1:6379/0")
EXPORT_PREFIX = os.environ.get("EXPORT_PREFIX", "export")
EXPORT_DEMO_SERVICE = os.environ.get("EXPORT_DEMO_SERVICE", "tether")
