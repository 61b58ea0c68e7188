"""Failed ERP -> shop records whose ERP row was corrected without its change stamp moving.

The change scan only sees rows whose stamp moved. A record that failed (an invalid e-mail, a
shop rejection) and was corrected by a tool that does not touch the stamp would wait for the
nightly reconciliation; so each failure keeps a fingerprint of the row as it failed
(``push_addresses.row_fingerprint``) and every cycle compares it with the row as it is now:
O(failed records) reads, not O(table). ``syncd retry`` (``syncd.flows.retry``) does it on an
operator's word.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import structlog

from syncd.core.domain import ErpAddress
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.failures import DIRECTION
from syncd.flows.push_addresses import CONFIG_CODES, apply_batch, row_fingerprint

log = structlog.get_logger("syncd.flows.corrected")


def chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def corrected_failures(ctx: PlatformContext) -> Iterator[list[ErpAddress]]:
    """Batches of failed records whose ERP row differs from the row they failed with (reads
    only). Records a configuration fault holds back are left out: ``erp_to_shop`` pushes them
    every cycle anyway."""
    name = ctx.platform.name
    with ctx.uow() as uow:
        prints = uow.failures.fingerprints(name, DIRECTION)
        waiting = set(uow.failures.records_with_code(name, DIRECTION, CONFIG_CODES)) if prints else set()
    numbers = sorted(int(r) for r in prints if r.isdigit() and r not in waiting)
    for chunk in chunks(numbers, ctx.platform.batch_size):
        found = ctx.erp.get_addresses(chunk)
        changed = [found[n] for n in chunk if n in found and row_fingerprint(found[n]) != prints[str(n)]]
        if changed:
            yield changed


def reevaluate_corrected(ctx: PlatformContext, report: CycleReport, *, mail: bool) -> int:
    """Push again every failed record whose ERP row was corrected; how many."""
    again = 0
    for changed in corrected_failures(ctx):
        log.info("failed records corrected in the ERP; evaluated again", platform=ctx.platform.name,
                 addresses=[a.number for a in changed])
        apply_batch(ctx, changed, report, credentials=mail)
        again += len(changed)
    return again
