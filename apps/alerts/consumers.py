"""In-app alert notices over /ws/alerts/: the consumer authenticates, joins its organisations' groups, forwards.

An `in_app` contact point's notification is sent to its organisation's group (senders.py); every signed-in
member's open page receives {"type": "alert", "title", "status", "alerts"}.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.access.selectors import organization_ids_for_user
from apps.alerts.alerting.senders import in_app_group

CLOSE_UNAUTHENTICATED = 4401


class AlertNoticeConsumer(AsyncJsonWebsocketConsumer):
    """One connection per page; receives the alert notices of the user's organisations."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.groups_joined = [
            in_app_group(organization_id)
            for organization_id in await database_sync_to_async(organization_ids_for_user)(user=user)
        ]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "user": user.get_username()})

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def alert_notice(self, event: dict) -> None:
        await self.send_json({"type": "alert", **event["notice"]})
