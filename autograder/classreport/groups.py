"""The class's failure messages grouped by cause, and each check's pass rate.

A check's messages name targets and numbers ("target 0.30: the model scores 0.4123, the reference solution
0.5531"); with the numbers taken out (:func:`cause_of`), the messages of one mistake read the same for every
student it hit, so :func:`group_messages` counts students per cause. :func:`pass_rates` ranks the checks.

Runs anywhere (plain values).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .record import ClassRecord

__all__ = ["cause_of", "MessageGroup", "group_messages", "CheckRate", "pass_rates"]

# A number not inside a name (fc1, conv2 and cell-12 keep theirs): 12, 0.4123, -3e-05, 1,234,567, 45%.
_NUMBER = re.compile(r"(?<![\w.\-])[-+]?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?")


def cause_of(message: str) -> str:
    """``message`` with every number replaced by ``#`` and runs of whitespace made one space."""
    return " ".join(_NUMBER.sub("#", message).split())


@dataclass
class MessageGroup:
    """One cause: the check it failed, the message without its numbers, one real message, and who it hit."""

    grade_id: str
    cause: str
    example: str
    students: list[str] = field(default_factory=list)
    messages: int = 0  # all messages of this cause (a student may get one per target)


def group_messages(record: ClassRecord) -> list[MessageGroup]:
    """Every failing check's messages grouped by (check, cause); most students first, then the notebook's order."""
    order = {c.grade_id: i for i, c in enumerate(record.checks)}
    groups: dict[tuple[str, str], MessageGroup] = {}
    for s in record.students:
        if not s.has_points:
            continue
        for gid, check in s.checks.items():
            for message in check.get("messages") or []:
                key = (gid, cause_of(message))
                group = groups.setdefault(key, MessageGroup(gid, key[1], message))
                group.messages += 1
                if s.student_id not in group.students:
                    group.students.append(s.student_id)
    return sorted(groups.values(), key=lambda g: (-len(g.students), order.get(g.grade_id, len(order)), g.cause))


@dataclass(frozen=True)
class CheckRate:
    """How many of the students with points passed one check (full points)."""

    grade_id: str
    title: str
    passed: int
    of: int

    @property
    def rate(self) -> float:
        return self.passed / self.of if self.of else 0.0


def pass_rates(record: ClassRecord) -> list[CheckRate]:
    """Each check's pass rate among the students with points, lowest first (ties in the notebook's order)."""
    scored = [s for s in record.students if s.has_points]
    rates = []
    for c in record.checks:
        passed = sum(1 for s in scored if s.checks.get(c.grade_id, {}).get("points", 0.0) >= c.max_points)
        rates.append(CheckRate(c.grade_id, c.title, passed, len(scored)))
    return sorted(rates, key=lambda r: r.rate)
