from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('runs', '0005_runs_bigint_limits'),
    ]

    operations = [
        migrations.AddField(
            model_name='run',
            name='resumes',
            field=models.IntegerField(default=0),
        ),
    ]
