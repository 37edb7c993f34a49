from django.apps import AppConfig


class ChaosAppConfig(AppConfig):
    name = "tests.chaos.app"
    label = "chaos_app"
