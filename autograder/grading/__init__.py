"""Grading the pruning assignment: the pruning-specific layer over :mod:`autograder.runner`.

Every module runs in the grader's process (or a cluster worker's), except
:mod:`~autograder.grading.kernel_export`, which is copied into each job and run inside the student's kernel.

The run, outermost first:

* :mod:`~autograder.grading.grade`: ``grade(cfg, open_executor)``, the use case; checks ``--out``;
* :mod:`~autograder.grading.executor`: where notebooks run (the :class:`~autograder.grading.executor.Executor`
  interface); :mod:`~autograder.grading.local`: this machine's job slots, one implementation (the cluster's is
  :class:`autograder.cluster.client.DaskCluster`);
* :mod:`~autograder.grading.batch`: one grading run: inputs, reference, every submission, outputs;
  :mod:`~autograder.grading.intake`: the class read from its download (:mod:`autograder.lms`), the roster applied;
* :mod:`~autograder.grading.jobs`: one submission's job (journal reuse, gradebook, feedback);
  :mod:`~autograder.grading.notebook_job`: running and scoring its notebook in a job slot;
  :mod:`~autograder.grading.preflight`: the check that the slots can run a notebook at all;
* :mod:`~autograder.grading.submission`, :mod:`~autograder.grading.recognise`,
  :mod:`~autograder.grading.metadata`: reading a submission, restoring the instructor's cells, nbgrader's
  cell-metadata check compiled once.

Scoring, from the saved weights alone:

* :mod:`~autograder.grading.scoring`: every check of a submission; :mod:`~autograder.grading.part12_checks`
  (parts 1-2) and :mod:`~autograder.grading.part3_checks` (part 3, with
  :mod:`~autograder.grading.trained_split`: which split a model was fine-tuned on);
* :mod:`~autograder.grading.measure`: model digests and the reference solution's measurements;
  :mod:`~autograder.grading.solutions`: the reference solutions; :mod:`~autograder.grading.parts`: the graded
  parts, their cells and points.

Records and reports: :mod:`~autograder.grading.results` (a check's result, a student's row),
:mod:`~autograder.grading.statuses` (every status, what it means and what to do), :mod:`~autograder.grading.cells`
(check titles, student cells and what depends on them), :mod:`~autograder.grading.journal`,
:mod:`~autograder.grading.gradebook`, :mod:`~autograder.grading.report` (the feedback pages, cause first);
:mod:`~autograder.grading.errors`; :mod:`~autograder.grading.warm_imports` imports, before the grading threads
start, what they would otherwise import for the first time at once.
"""
