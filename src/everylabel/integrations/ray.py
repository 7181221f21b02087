"""everylabel in Ray Data: `ClassifyBatch` as the callable class of `map_batches`.

    ds.map_batches(ClassifyBatch, fn_constructor_kwargs={"labels": [...]},
                   compute=ray.data.ActorPoolStrategy(size=4), batch_format="pyarrow")

Each actor loads the classifier once and adds the result columns (`RESULT_COLUMNS`) to every batch.
The class is batch mode's own core (`everylabel.batch.classify`); this module only names it for
Ray users, and Ray itself is imported only by the code that runs it.
"""

from __future__ import annotations

from ..batch.classify import RESULT_COLUMNS, ClassifyBatch, result_fields

__all__ = ["RESULT_COLUMNS", "ClassifyBatch", "result_fields"]
