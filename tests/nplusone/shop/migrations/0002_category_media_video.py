import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [("shop", "0001_initial")]

    operations = [
        migrations.CreateModel(
            name="Category",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=50)),
                ("parent", models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE,
                                             related_name="children", to="shop.category")),
            ],
        ),
        migrations.CreateModel(
            name="Media",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("title", models.CharField(max_length=100)),
                ("publisher", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="media",
                                                to="shop.publisher")),
            ],
        ),
        migrations.CreateModel(
            name="Video",
            fields=[
                ("media_ptr", models.OneToOneField(auto_created=True, on_delete=django.db.models.deletion.CASCADE,
                                                   parent_link=True, primary_key=True, serialize=False, to="shop.media")),
                ("minutes", models.IntegerField(default=0)),
            ],
            bases=("shop.media",),
        ),
    ]
