"""Joins two lines of migrations written in parallel: teams and data policies, token scopes."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("access", "0004_default_policies"),
        ("access", "0003_token_scopes_organization"),
    ]

    operations = []
