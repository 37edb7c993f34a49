"""Pages of the ratelimit app (mounted at /ratelimit/)."""

from django.urls import path

from . import views

app_name = "ratelimit"
urlpatterns = [
    path("", views.playground, name="playground"),
]
