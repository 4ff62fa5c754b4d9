"""Joins two lines of migrations written in parallel: new panel types, annotations."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("dashboards", "0002_alter_panel_type"),
        ("dashboards", "0002_annotations"),
    ]

    operations = []
