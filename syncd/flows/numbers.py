"""Which ERP address number a shop customer gets (spec §1 step 4).

Numbers start at ``next_address_number`` and come from the persisted counter
(``syncd.state.allocations``), so a number is never handed out twice, even across restarts and
instances. A number the ERP already uses is skipped. The ERP may create addresses at the same
time (an operator at the ERP desk), so there is no check-then-insert: the caller *inserts* and,
when the ERP reports the key as taken, ``place`` simply takes the next number. The existence
check in ``reserve_free`` only saves a failed insert; it is not what makes allocation safe.

A number outside ``[erp] debtor_range`` is refused (``NumberRefused``) before it is consumed,
unless ``allow_numbers_outside_debtor_range`` is on: the flow stops importing for the platform
and reports it, because skipping to some other number would hide the problem.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from syncd.core.errors import PermanentError

if TYPE_CHECKING:
    from syncd.config.model import PlatformSettings, Settings
    from syncd.core.ports import ErpPort
    from syncd.state.allocations import Allocations

# Consecutive taken numbers tolerated in one reservation before giving up: a counter that
# points into a densely used block must not turn one import into an endless scan.
MAX_SKIPS = 100_000


class ImportBlocked(PermanentError):
    """A fault that every further import of the platform would meet too (no number left, the
    template or collective address missing): the flow stops importing and reports it."""


class NumberRefused(ImportBlocked):
    """The next address number lies outside the debtor range (or the range is used up)."""

    step = "allocate"

    def __init__(self, message: str, *, number: int) -> None:
        super().__init__(message, code="number-out-of-range")
        self.number = number


@dataclass(frozen=True)
class NumberPolicy:
    platform: str
    start: int
    debtor_range: tuple[int, int]
    allow_outside: bool

    @classmethod
    def from_settings(cls, settings: Settings, platform: PlatformSettings) -> NumberPolicy:
        a = platform.addresses
        # Without an explicit start the debtor range's first number is the natural one; the
        # taken numbers are skipped once and the persisted counter remembers where it got to.
        start = a.next_address_number if a.next_address_number is not None else settings.erp.debtor_range[0]
        return cls(platform.name, start, settings.erp.debtor_range, a.allow_numbers_outside_debtor_range)

    def check(self, number: int) -> None:
        lo, hi = self.debtor_range
        if self.allow_outside or lo <= number <= hi:
            return
        raise NumberRefused(
            f"platform {self.platform}: next address number {number} is outside [erp] debtor_range "
            f"{lo}-{hi}; imports stop until the range is widened, "
            f"platforms.addresses.next_address_number is moved into the range, "
            f"or allow_numbers_outside_debtor_range = true",
            number=number,
        )


class NumberAllocator:
    """``settle`` (the flow's ``uow.commit``) makes a reservation durable before the ERP is asked
    about the number, as a reservation on the store itself is: a unit of work holding the
    reservation would hold the state store's write lock across the ERP call."""

    def __init__(self, allocations: Allocations, erp: ErpPort, policy: NumberPolicy, *,
                 settle: Callable[[], None] | None = None) -> None:
        self._allocations = allocations
        self._erp = erp
        self.policy = policy
        self._settle = settle or (lambda: None)

    def reserve_free(self) -> int:
        """Reserve the next number that the ERP does not use yet.

        A taken number is not reserved one by one: the scan runs ahead to the next free number
        and reserves that, which moves the counter past the whole taken block in one step.
        """
        floor = self.policy.start
        for _ in range(MAX_SKIPS):
            number = self._allocations.reserve(self.policy.platform, floor=floor, accept=self.policy.check)
            self._settle()
            if not self._erp.number_exists(number):
                return number
            floor = self._next_unused(number + 1)
        raise NumberRefused(
            f"platform {self.policy.platform}: could not find a free address number after {number}; "
            f"other writers keep taking them",
            number=number,
        )

    def _next_unused(self, number: int) -> int:
        for _ in range(MAX_SKIPS):
            self.policy.check(number)
            if not self._erp.number_exists(number):
                return number
            number += 1
        raise NumberRefused(
            f"platform {self.policy.platform}: {MAX_SKIPS} consecutive address numbers are taken in the "
            f"ERP up to {number}; set platforms.addresses.next_address_number to a free block",
            number=number,
        )

    def place(self, insert: Callable[[int], bool]) -> int:
        """Reserve numbers until ``insert(number)`` takes one; ``insert`` returns False when the
        number turned out to be taken (the ERP's key conflict) and raises on anything else.

        A ``PermanentError`` from ``insert`` means nothing was written, so the number is given
        back (when still the newest) instead of leaving a gap.
        """
        for _ in range(MAX_SKIPS):
            number = self.reserve_free()
            try:
                if insert(number):
                    return number
            except PermanentError:
                self._allocations.release(self.policy.platform, number)
                self._settle()
                raise
        raise NumberRefused(
            f"platform {self.policy.platform}: {MAX_SKIPS} address numbers in a row were taken at insert",
            number=number,
        )

    def preview(self) -> Iterator[int]:
        """The numbers ``reserve_free`` would hand out next, in order, without reserving any
        (``--dry-run``). Raises ``NumberRefused`` at the first one outside the range."""
        current = self._allocations.peek(self.policy.platform)
        number = self.policy.start if current is None else max(current, self.policy.start)
        while True:
            number = self._next_unused(number)
            yield number
            number += 1
