from django.apps import AppConfig


class ProcessAppConfig(AppConfig):
    name = "tests.process_app"
    label = "process_app"
