"""Alerting: rules evaluated against the query engine, instance states, routing and notifications.

Other apps use `apps.alerts.alerting.services` and `apps.alerts.alerting.selectors` only.
"""
