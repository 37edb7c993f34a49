from django.apps import AppConfig


class IotConfig(AppConfig):
    name = "apps.iot"
    label = "iot"
    default_auto_field = "django.db.models.BigAutoField"
