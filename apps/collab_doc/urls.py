"""Pages of the collab_doc app: ``/docs/`` and ``/docs/<name>/``."""

from django.urls import path

from . import views

app_name = "collab_doc"
urlpatterns: list = [
    path("", views.documents, name="documents"),
    path("<str:name>/", views.editor, name="editor"),
]
