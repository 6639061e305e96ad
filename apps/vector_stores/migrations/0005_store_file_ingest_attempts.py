"""A store file records when its ingestion started and how many times it was tried."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('vector_stores', '0004_file_batch_plural_name'),
    ]

    operations = [
        migrations.AddField(
            model_name='vectorstorefile',
            name='ingest_attempts',
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='vectorstorefile',
            name='ingest_started_ns',
            field=models.BigIntegerField(blank=True, null=True),
        ),
    ]
