"""Label keys registered on a source with history are built online (plain PostgreSQL): the registry gets `ready`
and `built_until` (keys already registered are ready). See apps/storage/backends/label_rollups.py."""

from django.db import migrations


def install(apps, schema_editor) -> None:
    from apps.storage.backends import backend_for
    from apps.storage.backends.base import BACKEND_POSTGRES

    backend = backend_for(schema_editor.connection.alias)
    if backend.name == BACKEND_POSTGRES:
        backend.label_rollups_install()  # idempotent: adds the columns where they are missing


class Migration(migrations.Migration):
    dependencies = [("storage", "0011_minute_series_deltas")]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
