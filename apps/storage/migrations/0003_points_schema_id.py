"""Each point records the source schema version that accepted it (databases installed before the column existed)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("storage", "0002_install_backend")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE points ADD COLUMN IF NOT EXISTS schema_id integer",
            migrations.RunSQL.noop,
        )
    ]
