"""Provisional 1-minute rollups: the provisional bound and the dirty-minute marks (plain PostgreSQL backend only)."""

from django.db import migrations


def install(apps, schema_editor) -> None:
    from apps.storage.backends import backend_for

    backend_for(schema_editor.connection.alias).provisional_rollups_install()


class Migration(migrations.Migration):
    dependencies = [("storage", "0004_label_rollups")]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
