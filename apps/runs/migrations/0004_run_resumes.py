from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('runs', '0003_callable_auto_defaults'),
    ]

    operations = [
        migrations.AddField(
            model_name='run',
            name='resumes',
            field=models.IntegerField(default=0),
        ),
    ]
