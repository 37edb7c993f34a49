from django.apps import AppConfig


class CollabDocConfig(AppConfig):
    name = "apps.collab_doc"
    label = "collab_doc"
    default_auto_field = "django.db.models.BigAutoField"
