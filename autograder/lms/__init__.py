"""How a class's work arrives and how its grades and feedback go back: LMS downloads in, LMS imports out.

Knows nothing about grading. :func:`~autograder.lms.collect.collect` reads a folder or a ``.zip`` in any layout a
course hands over and returns one :class:`~autograder.lms.entries.Entry` per student (:mod:`autograder.grading`
grades them and keeps what was read in ``submissions.json``); :mod:`~autograder.lms.export` turns a finished
grading folder into the file the LMS imports and the feedback it takes back. One module per source:

* :mod:`~autograder.lms.canvas`: Canvas's "Download Submissions" zip, gradebook CSV and re-upload zip;
* :mod:`~autograder.lms.moodle`: Moodle's "Download all submissions" zip, grading worksheet and feedback zip;
* :mod:`~autograder.lms.folders`: nbgrader's ``submitted/`` and exchange inbound folders, a folder of notebooks;
* :mod:`~autograder.lms.roster`: the class list (a Canvas gradebook, a Moodle worksheet, or ``id,name,email``);
* :mod:`~autograder.lms.listing`: the files of a folder or a zip, and safe extraction;
* :mod:`~autograder.lms.csv_cells`: changing a CSV's cells while every other byte stays as the LMS wrote it;
* :mod:`~autograder.lms.entries`: the values they share.

Runs in the grader's process.
"""
