"""Vector store name/description become unbounded text (the spec sets no maximum), and a file
batch links every store file it asked for (a file may belong to several batches)."""

from django.db import migrations, models


def link_existing_batch_files(apps, schema_editor) -> None:
    VectorStoreFile = apps.get_model("vector_stores", "VectorStoreFile")
    Link = apps.get_model("vector_stores", "FileBatch").store_files.through
    Link.objects.bulk_create(
        [Link(filebatch_id=batch_id, vectorstorefile_id=entry_id)
         for entry_id, batch_id in VectorStoreFile.objects.filter(batch__isnull=False)
         .values_list("pk", "batch_id").iterator()],
        batch_size=1000, ignore_conflicts=True)


class Migration(migrations.Migration):

    dependencies = [
        ('vector_stores', '0001_initial'),
    ]

    operations = [
        migrations.AlterField(
            model_name='vectorstore',
            name='name',
            field=models.TextField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='vectorstore',
            name='description',
            field=models.TextField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='filebatch',
            name='store_files',
            field=models.ManyToManyField(blank=True, related_name='file_batches', to='vector_stores.vectorstorefile'),
        ),
        migrations.RunPython(link_existing_batch_files, migrations.RunPython.noop),
    ]
