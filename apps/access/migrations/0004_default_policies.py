"""Existing organisations get the default policy new ones get (every member reads everything), so deny by default
does not take their data away when this version is deployed."""

from django.db import migrations

DEFAULT_POLICY_NAME = "All members read everything"


def add_default_policies(apps, schema_editor):
    Organization = apps.get_model("access", "Organization")
    DataPolicy = apps.get_model("access", "DataPolicy")
    for organization in Organization.objects.all():
        if not DataPolicy.objects.filter(organization=organization).exists():
            DataPolicy.objects.create(organization=organization, name=DEFAULT_POLICY_NAME, all_members=True)


class Migration(migrations.Migration):
    dependencies = [("access", "0003_teams_data_policies")]

    operations = [migrations.RunPython(add_default_policies, migrations.RunPython.noop)]
