"""ReportSnapshot.config_version: every snapshot stored before it gets 1 (computed by an earlier
version of the site: the report page queues its recomputation when viewed), new ones the current
REPORT_CONFIG_VERSION."""

from django.db import migrations, models

import evalsite.reports.models


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0004_reportstate_failure"),
    ]

    operations = [
        migrations.AddField(
            model_name="reportsnapshot",
            name="config_version",
            field=models.PositiveSmallIntegerField(default=1),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="reportsnapshot",
            name="config_version",
            field=models.PositiveSmallIntegerField(
                default=evalsite.reports.models.current_config_version
            ),
        ),
    ]
