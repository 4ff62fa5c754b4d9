"""TimescaleDB: label tiers, and one owner per maintenance job (our jobs instead of TimescaleDB's policies) for
databases installed before them. Nothing to do on plain PostgreSQL."""

from django.db import migrations


def install(apps, schema_editor) -> None:
    from apps.storage.backends import backend_for
    from apps.storage.backends.base import BACKEND_TIMESCALEDB

    backend = backend_for(schema_editor.connection.alias)
    if backend.name == BACKEND_TIMESCALEDB:
        backend.install()  # idempotent: creates what is missing, moves the policies to our jobs


class Migration(migrations.Migration):
    # TimescaleDB's continuous aggregates cannot be created inside a transaction block.
    atomic = False

    dependencies = [("storage", "0008_label_deltas")]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
