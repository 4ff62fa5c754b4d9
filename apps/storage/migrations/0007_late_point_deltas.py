"""Late points' deltas: one append-only table per rollup tier (plain PostgreSQL backend only)."""

from django.db import migrations


def install(apps, schema_editor) -> None:
    from apps.storage.backends import backend_for

    backend = backend_for(schema_editor.connection.alias)
    if hasattr(backend, "deltas_install"):
        backend.deltas_install()


class Migration(migrations.Migration):
    dependencies = [("storage", "0006_partition_epoch")]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
