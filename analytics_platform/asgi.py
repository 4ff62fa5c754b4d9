"""ASGI entry point: HTTP goes to Django (ingest writes by the write lane), WebSocket through origin and auth
checks to Channels consumers."""

import os

from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "analytics_platform.settings.dev")
django_asgi_app = get_asgi_application()

from analytics_platform.runtime import startup_objects_freeze  # noqa: E402
from apps.access.websocket import secure_websocket_application  # noqa: E402  (needs Django set up)
from apps.alerts.routing import websocket_urlpatterns as alert_websocket_urlpatterns  # noqa: E402
from apps.dashboards.routing import websocket_urlpatterns  # noqa: E402
from apps.ingestion.write_lane import WriteLane  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": WriteLane(django_asgi_app),  # ingest writes skip most of Django (write_lane.py)
        "websocket": secure_websocket_application(URLRouter([*websocket_urlpatterns, *alert_websocket_urlpatterns])),
    }
)

# Last: everything imported so far lives as long as the process (see runtime.py).
startup_objects_freeze()
