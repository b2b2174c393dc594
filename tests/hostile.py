"""Hostile submissions for the sandbox tests, graded as root (``tests/e2e/test_sandbox.py``) and as an ordinary
user (``tests/e2e/test_unprivileged.py``): each is the reference solution with one attack added, and what grading
it must give.

Every path an attack aims at is an argument, so that the same attacks aim at the checkout, the submissions and
the output folder of whoever grades.
"""

from __future__ import annotations

import csv
import socket
import threading
from pathlib import Path

import nbformat

from autograder.grading.parts import CHECKS
from autograder.runner.limits import format_size, parse_size
from autograder.samples import Sample, load_samples

#: Names a process an attack leaves behind (the daemon), so that a test can look for it.
MARKER = "pruning-sandbox-daemon-7f3a"
PART1 = {g for g in CHECKS if "unstructured" in g}
PART2 = set(CHECKS) - PART1


def reference_cells() -> dict[str, str]:
    return next(s for s in load_samples() if s.name == "reference").cells


def controls(*names: str) -> list[Sample]:
    """Correct submissions (the reference solution) that must keep full marks beside the attacks."""
    return [Sample(n, set(), "ok", cells=reference_cells()) for n in names]


def _after_last_export(action: str) -> str:
    """Code that registers ``action`` (a function body using ``folder``, the job folder) to run after the cell
    in which the last hidden check exported its part: everything the grader will read is written by then."""
    body = "".join(f"    {line}\n" for line in action.strip().splitlines())
    return ("import os\n_done = []\n"
            "def _after(*args):\n"
            "    exported = os.environ.get('PRUNING_EXPORT_DIR')\n"
            "    if _done or not exported or not os.path.exists(os.path.join(exported, 'finetune.pt')):\n"
            "        return\n"
            "    _done.append(1)\n"
            "    folder = os.path.dirname(exported)\n"
            f"{body}"
            "get_ipython().events.register('post_run_cell', _after)\n")


def attacks(course: Path, submitted: Path, out: Path, port: int, grader_marker: Path, grader_file: Path,
            memory_limit: str) -> list[Sample]:
    """One sample per attack on the machine of whoever grades ``submitted`` into ``out`` from the checkout
    ``course``: ``port`` is a listening local server, ``grader_marker`` a file that must never be made,
    ``grader_file`` a file of the grader's user that must keep its mode, ``memory_limit`` the run's
    ``--memory-limit`` (2G: the memory attack takes 3 GiB)."""
    ref = reference_cells()
    other = submitted / "control_a" / "pruning" / "pruning.ipynb"
    source_nb = course / "assignment" / "source" / "pruning" / "pruning.ipynb"
    release_nb = course / "assignment" / "release" / "pruning" / "pruning.ipynb"
    part2_end = {  # appended to prune_structured: part 1 is complete by then
        "attack_kill_everything": "import os, signal\nos.kill(-1, signal.SIGKILL)\n",
        "attack_kill_parent": ("import os, signal\nfor pid in (os.getppid(), 1):\n"
                               "    for fn in (lambda: os.kill(pid, 9), lambda: os.killpg(os.getpgid(pid), 9)):\n"
                               "        try:\n            fn()\n        except OSError as e:\n"
                               "            print('refused', e)\n"),
        "attack_daemon": ("import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                          f"        os.execv('/bin/sh', ['sh', '-c', 'sleep 6; echo forged,20 >> {out}/grades.csv', "
                          f"'{MARKER}'])\n    os._exit(0)\nos.wait()\n"),
        "attack_rewrite_files": (
            "import os\nwritten = []\n"
            f"for path in [{str(other)!r}, {str(source_nb)!r}, {str(release_nb)!r}]:\n"
            "    try:\n        open(path, 'a').write(' ')\n        written.append(path)\n"
            "    except OSError:\n        pass\n"
            "for top, dirs, files in os.walk('/'):\n"
            "    dirs[:] = [d for d in dirs if os.path.join(top, d) not in ('/proc', '/sys', '/usr', '/dev')]\n"
            "    for f in files:\n        p = os.path.join(top, f)\n"
            "        if p.endswith('.ipynb') and not p.startswith(os.getcwd()):\n"
            "            try:\n                open(p, 'a').write(' ')\n                written.append(p)\n"
            "            except OSError:\n                pass\n"
            "print('WRITTEN:', written)\n"),
        "attack_network": ("import socket\ntry:\n"
                           f"    socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'hello')\n"
                           "    print('CONNECTED')\nexcept OSError as e:\n    print('no network:', e)\n"),
        "attack_memory": "hog = bytearray(3 * 1024**3)\n",
        "attack_process_flood": (
            "import os, time\nforked = 0\ntry:\n    for _ in range(2000):\n        if os.fork() == 0:\n"
            "            os.execv('/bin/sleep', ['sleep', '3'])\n        forked += 1\n"
            "except OSError as e:\n    print('fork refused after', forked, e)\n"
            "time.sleep(4)\nwhile True:\n    try:\n        os.wait()\n    except ChildProcessError:\n        break\n"),
        "attack_poisoned_export": (
            "import os, pickle\n"
            "class Evil:\n"
            f"    def __reduce__(self):\n        return (os.system, ('touch {grader_marker}',))\n"
            "def _poison(*args):\n"
            "    folder = os.environ.get('PRUNING_EXPORT_DIR')\n"
            "    if folder and os.path.isdir(folder):\n"
            "        for part in ('unstructured', 'structured'):\n"
            "            with open(os.path.join(folder, part + '.pt'), 'wb') as fh:\n"
            "                pickle.dump(Evil(), fh)\n"
            "get_ipython().events.register('post_run_cell', _poison)\n"),
        # Once everything is exported: a link to a file of the grader's user, and every mode taken away (root's
        # grader ignores modes; an ordinary user's could neither read the exports nor clean the slot).
        "attack_modes_and_links": _after_last_export(
            f"os.symlink({str(grader_file)!r}, os.path.join(exported, 'link'))\n"
            "for top, dirs, files in os.walk('/grading', topdown=False):\n"
            "    for name in dirs + files:\n"
            "        if not os.path.islink(os.path.join(top, name)):\n"
            "            os.chmod(os.path.join(top, name), 0)\n"
            "os.chmod('/grading', 0)\n"),
        # Once everything is exported: the job folder deleted, exports with it (the notebook's own loss).
        "attack_delete_folder": _after_last_export("import shutil\nshutil.rmtree(folder)\n"),
    }
    read_answers = (
        "import os\nleaked = []\n"
        f"for path in [{str(source_nb)!r}, {str(other)!r}, {str(course / 'autograder/grading/solutions.py')!r}]:\n"
        "    try:\n        open(path).read()\n        leaked.append(path)\n    except OSError:\n        pass\n"
        f"for folder in [{str(submitted)!r}, {str(out)!r}]:\n"
        "    try:\n        os.listdir(folder)\n        leaked.append(folder)\n    except OSError:\n        pass\n"
        # the checkout shows only what the kernel runs on (its virtual environment, helpers), if they lie inside it
        f"if {{'assignment', 'autograder'}} & set(os.listdir({str(course)!r}) if os.path.isdir({str(course)!r}) "
        "else []):\n    leaked.append('course')\n"
        "if os.environ.get('GRADER_SECRET'):\n    leaked.append('environment')\n"
        "for path in ('/proc/1/environ', '/proc/1/mem'):\n"
        "    try:\n        open(path, 'rb').read(1)\n        leaked.append(path)\n    except OSError:\n        pass\n"
        "try:\n    from autograder.grading.solutions import prune_unstructured\n    leaked.append('import')\n"
        "except ImportError as e:\n    print(e)\nprint('LEAKED:', leaked)\n")
    expect = {"attack_memory": (PART2, f"error: memory limit ({format_size(parse_size(memory_limit))})"),
              # the poison replaces parts 1-2's exports; remove_filters itself is right, on the export's own models
              "attack_poisoned_export": (set(CHECKS) - {"test_removal_function"}, "ok"),
              "attack_delete_folder": (set(CHECKS), "ok"),
              "attack_read_answers": (set(CHECKS), "ok")}
    samples = [Sample(n, *expect.get(n, (set(), "ok")), cells={**ref, "prune_structured": ref["prune_structured"] + c})
               for n, c in part2_end.items()]
    samples.append(Sample("attack_read_answers", *expect["attack_read_answers"],
                          cells={"prune_unstructured": read_answers, "prune_structured": "pass\n"}))
    return samples


def printed(out: Path, sid: str) -> str:
    """What the executed notebook of ``sid`` printed, all cells together."""
    nb = nbformat.read(out / "executed" / f"{sid}.ipynb", as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def rows(out: Path) -> dict[str, dict]:
    """``grades.csv`` of ``out`` by student id."""
    with open(out / "grades.csv") as fh:
        return {r["student_id"]: r for r in csv.DictReader(fh)}


def listener() -> tuple[socket.socket, list]:
    """A local TCP server (the attack's target) and the list of what it received."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.5)
    got: list = []

    def accept():
        while True:
            try:
                conn, _ = server.accept()
                got.append(conn.recv(100))
            except socket.timeout:
                continue
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return server, got


def wrong_rows(found: dict[str, dict], samples: list[Sample]) -> list[str]:
    """Each sample whose row in ``found`` does not have the points and status it declares."""
    wrong = []
    for sample in samples:
        row = found[sample.name]
        zero = {g for g in CHECKS if float(row[g]) == 0}
        if zero != sample.expect_zero or not row["status"].startswith(sample.expect_status):
            wrong.append(f"{sample.name}: zero {sorted(zero)} status {row['status']!r}; expected zero "
                         f"{sorted(sample.expect_zero)} status {sample.expect_status!r}")
    return wrong
