# The chunk column was created (0001) with settings.EMBEDDINGS_DIMENSIONS at the time. This
# records which model and size the stored vectors have; after every `migrate`,
# apps.vector_stores.dimensions.check_embedding_space resizes the column while no chunk has a
# vector, and otherwise refuses a different model or size until `manage.py reembed`.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('vector_stores', '0002_batch_store_files_and_text_names'),
    ]

    operations = [
        migrations.CreateModel(
            name='EmbeddingSpace',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('model', models.TextField()),
                ('dimensions', models.IntegerField()),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
        ),
    ]
