"""URLs: /exports/ to start an export, /exports/<id>/... to follow it."""

from django.urls import path, register_converter

from . import views


class JobIdConverter:
    """A job id (PROTOCOL.md section 2); anything else is a plain 404."""

    regex = "[A-Za-z0-9._:-]{1,128}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(JobIdConverter, "jobid")

urlpatterns = [
    path("exports/", views.create_export, name="export-create"),
    path("exports/<jobid:job_id>/", views.export_status, name="export-status"),
    path("exports/<jobid:job_id>/download/", views.download_export, name="export-download"),
    path("exports/<jobid:job_id>/wait/", views.wait_export, name="export-wait"),
]
