"""Pages of the chat app."""

from django.urls import path

from . import views

app_name = "chat"
urlpatterns: list = [
    path("", views.index, name="index"),
    path("<str:room>/", views.room, name="room"),
]
