"""nbgrader configuration of the pruning course (course root: this folder)."""

c = get_config()  # noqa: F821 - provided by nbgrader

c.CourseDirectory.course_id = "pruning-course"
# Grading data and model come from the environment (CINIC10_ROOT, PRUNING_MODEL), never from
# files in source/pruning/: nbgrader would copy such files into every student's folder.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.ExecutePreprocessor.timeout = 300
c.Execute.timeout = 300
