"""Late points' per-series deltas are 1-minute rows only (hours and days are derived from them): the hour and day
per-series delta tables of a database written before are folded into their tiers and dropped (plain PostgreSQL;
see apps/storage/backends/deltas.py)."""

from django.db import migrations


def install(apps, schema_editor) -> None:
    from apps.storage.backends import backend_for

    backend = backend_for(schema_editor.connection.alias)
    if hasattr(backend, "deltas_install"):
        backend.deltas_install()  # idempotent: folds and drops points_1h_delta and points_1d_delta where they exist


class Migration(migrations.Migration):
    dependencies = [("storage", "0010_delta_pending_flags")]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
