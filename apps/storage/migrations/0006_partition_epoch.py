"""The partition epoch beside the watermark: retention bumps it when it drops partitions, and every process that
reads a new epoch forgets the partitions it remembered (plain PostgreSQL backend only)."""

from django.db import migrations


def install(apps, schema_editor) -> None:
    from apps.storage.backends import backend_for

    backend = backend_for(schema_editor.connection.alias)
    if hasattr(backend, "partition_epoch_install"):
        backend.partition_epoch_install()


class Migration(migrations.Migration):
    dependencies = [("storage", "0005_provisional_rollups")]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
