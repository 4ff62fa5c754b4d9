"""Late points' label deltas: one append-only table per rollup tier beside its per-series deltas (plain PostgreSQL)."""

from django.db import migrations


def install(apps, schema_editor) -> None:
    from apps.storage.backends import backend_for

    backend = backend_for(schema_editor.connection.alias)
    if hasattr(backend, "deltas_install"):
        backend.deltas_install()  # idempotent: adds the label delta tables to databases that have the others


class Migration(migrations.Migration):
    dependencies = [("storage", "0007_late_point_deltas")]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
