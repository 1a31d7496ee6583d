"""Delete the embeddings whose vector holds a NaN or an infinity.

Before ingest refused non-finite vectors (a checkpoint whose training diverged), such vectors were
stored. Search left them out, but they counted as embedded (coverage, job progress) and
embed_clips skipped their clips, so they were never computed again. Deleted, their clips count
as not embedded and the next ingest job embeds them. The vectors are float32 bytes, which SQL
cannot test, so each is read here, in chunks. Nothing to undo: the vectors were unusable.
"""

import numpy as np
from django.db import migrations

CHUNK = 2000  # rows read, and ids deleted, at a time


def delete_non_finite(apps, schema_editor):
    Embedding = apps.get_model("retrieval", "Embedding")
    rows = Embedding.objects.using(schema_editor.connection.alias)
    bad = [
        pk
        for pk, vector in rows.values_list("pk", "vector").iterator(chunk_size=CHUNK)
        if not np.isfinite(np.frombuffer(bytes(vector), dtype="<f4")).all()
    ]
    for i in range(0, len(bad), CHUNK):
        rows.filter(pk__in=bad[i : i + CHUNK]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("retrieval", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(delete_non_finite, migrations.RunPython.noop, elidable=True),
    ]
