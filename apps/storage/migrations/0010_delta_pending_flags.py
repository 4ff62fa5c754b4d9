"""Late points' deltas: a pending flag per delta table, which queries read instead of scanning the table (plain
PostgreSQL; see apps/storage/backends/deltas.py, deltas_pending_read)."""

from django.db import migrations


def install(apps, schema_editor) -> None:
    from apps.storage.backends import backend_for

    backend = backend_for(schema_editor.connection.alias)
    if hasattr(backend, "deltas_install"):
        backend.deltas_install()  # idempotent: adds the flags (pending) to databases that have the tables


class Migration(migrations.Migration):
    dependencies = [("storage", "0009_timescaledb_maintenance_jobs")]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
