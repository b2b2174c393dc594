"""Running notebooks safely: a generic layer that knows nothing about pruning.

Runs in the grader's process, except :mod:`~autograder.runner.zygote` (its own process, inside a
sandbox). A notebook runs in a warm Jupyter kernel (:mod:`~autograder.runner.kernels`) forked
inside a job slot's bubblewrap sandbox (:mod:`~autograder.runner.sandbox`,
:mod:`~autograder.runner.slots`) under time, memory, process and CPU-time limits
(:mod:`~autograder.runner.limits`: cgroups, :mod:`~autograder.runner.cgroups`, where the grader may make
them, else rlimits the kernel sets on itself), driven by nbclient (:mod:`~autograder.runner.execute`) over
channels that never miss a message (:mod:`~autograder.runner.channels`); what comes back is a
status and the executed notebook.
"""
