"""Cohorts: a folder of scans through one or more models, locally or on Ray, resumable, with a report.

* :mod:`.cases` finds the cases (BraTS and LGG case folders count as one case; ground truth beside a scan);
* :mod:`.runner` runs tasks with each worker holding its models once (this process, a process pool,
  or Ray Data through :mod:`.ray_runner`, imported only when asked for);
* :mod:`.worker` is the work of one case: read, segment, write the mask, measure;
* :mod:`.results` keeps the journal, resumes, and writes atomically inside the output folder;
* :mod:`.report` writes ``summary.md`` and ``summary.png``;
* :mod:`.cohort` ties them together (:func:`run_cohort`, ``python -m seg_core batch``).

``seg_core.evaluate`` runs a dataset split through the same :func:`run_tasks`.
"""

from seg_core.batch.cases import Case, CohortError, find_cases
from seg_core.batch.cohort import CohortRun, run_cohort
from seg_core.batch.runner import Task, run_tasks

__all__ = ["Case", "CohortError", "CohortRun", "Task", "find_cases", "run_cohort", "run_tasks"]
