"""Label rollup tables for databases installed before them (plain PostgreSQL backend only)."""

from django.db import migrations


def install(apps, schema_editor) -> None:
    from apps.storage.backends import backend_for

    backend = backend_for(schema_editor.connection.alias)
    if backend.label_rollups:
        backend.label_rollups_install()


class Migration(migrations.Migration):
    dependencies = [("storage", "0003_points_schema_id")]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
