"""Install the storage backend: points, rollup tiers and their maintenance (TimescaleDB or plain PostgreSQL)."""

from django.db import migrations


def install(apps, schema_editor) -> None:
    from apps.storage.backends import backend_install

    backend_install(schema_editor.connection.alias)


class Migration(migrations.Migration):
    # TimescaleDB's continuous aggregates cannot be created inside a transaction block.
    atomic = False

    dependencies = [("storage", "0001_initial")]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
