"""Grading the pruning assignment: the pruning-specific layer over :mod:`autograder.runner`.

Runs in the grader's process, except :mod:`~autograder.grading.collect` (copied into each job
and run inside the student's kernel). One module per step: find and prepare submissions
(:mod:`~autograder.grading.submission`), run them (:mod:`~autograder.grading.grade`), score the
saved models per pruning kind (:mod:`~autograder.grading.parts`,
:mod:`~autograder.grading.scoring`, :mod:`~autograder.grading.reference`), record
(:mod:`~autograder.grading.journal`, :mod:`~autograder.grading.gradebook`) and report
(:mod:`~autograder.grading.report`). :mod:`~autograder.grading.imports` imports, before the
grading threads start, what they would otherwise import for the first time at once.
"""
