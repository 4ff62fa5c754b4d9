from django.urls import path

from apps.alerts.consumers import AlertNoticeConsumer

websocket_urlpatterns = [path("ws/alerts/", AlertNoticeConsumer.as_asgi())]
