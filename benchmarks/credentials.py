"""Credential mails for N new customers (default 2,000): the ERP -> shop flow against a SQLite ERP
file, the Shopware sandbox over HTTP and a local aiosmtpd server.

The sandbox and the SMTP server run in their own processes (as a real shop and relay would), so
their work does not compete with the flow for this process's GIL.

Prints, measured in the same run:
  - the whole cycle (push, link, passwords, mails): wall time and mails/s;
  - the credentials part alone (time inside ``credentials.send_due``: write fields, set
    passwords on the shop, re-read, render, send, clear): mails/s;
  - a bare smtplib loop sending the very same messages (encoded beforehand) over one connection
    (the baseline; median of 3 runs), and the ratio flow/bare (goal >= 0.7);
  - how long each password stayed in the ERP field: timestamps taken right after the write
    returned and right after the clear returned (goal: median < 1 s), median / p95 / max;
  - CPU seconds of each process in both measurements (Linux): the flow, the shop and the SMTP
    server share this machine's cores, so their CPU total over the core count is a lower bound
    for the credentials part's wall time here, and bare/that bound the best ratio this machine
    allows.

    python benchmarks/credentials.py [--customers 2000] [--batch 100] [--ahead 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import smtplib
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from syncd.connectors.mail.message import encode_message  # noqa: E402
from syncd.core.gcpause import gc_paused  # noqa: E402
from syncd.flows import credentials, erp_to_shop  # noqa: E402
from syncd.flows.credentials import pipeline  # noqa: E402
from syncd.shell.logs import configure_logging  # noqa: E402
from syncd.state.db import open_state  # noqa: E402
from tests.support import erp_fixtures  # noqa: E402
from tests.support.flow_harness import PASSWORD_FIELD, build_context, build_settings  # noqa: E402


# ------------------------------------------------------------------ peers in their own processes
def _smtp_child(conn: Any) -> None:
    from tests.support.mailserver import MailServer

    with MailServer(keep_messages=False) as server:
        conn.send((server.host, server.port))
        while conn.recv() == "count":
            conn.send(server.accepted)


def _sandbox_child(conn: Any) -> None:
    from syncd.connectors.shopware6.sandbox import Sandbox

    with Sandbox() as sb:
        conn.send((sb.url, sb.client_id, sb.client_secret))
        conn.recv()


@contextmanager
def child(target: Any) -> Any:
    parent, kid = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=target, args=(kid,), daemon=True)
    proc.start()
    parent.pid = proc.pid  # type: ignore[attr-defined]  # for cpu_seconds
    try:
        yield parent
    finally:
        try:
            parent.send("stop")
        except OSError:
            pass
        proc.join(10)
        if proc.is_alive():
            proc.kill()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of process ``pid`` (all its threads) so far; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Adds up the CPU seconds each named process spends inside ``with meter:`` blocks."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.spent = dict.fromkeys(pids, 0.0)
        self._start: dict[str, float | None] = {}

    def __enter__(self) -> CpuMeter:
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def __exit__(self, *exc: Any) -> None:
        for name, pid in self.pids.items():
            start, now = self._start[name], cpu_seconds(pid)
            if start is not None and now is not None:
                self.spent[name] += now - start

    @property
    def available(self) -> bool:
        return cpu_seconds(os.getpid()) is not None


# ------------------------------------------------------------------ measuring adapters
class TimedErp:
    """Delegates to the real ERP port; notes when each number's field was written and cleared."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.written: dict[int, float] = {}
        self.held: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def write_password_fields(self, values: Any) -> None:
        self._inner.write_password_fields(values)
        now = time.perf_counter()
        for n in values:
            self.written[n] = now

    def clear_password_fields(self, numbers: Any) -> None:
        numbers = list(numbers)
        self._inner.clear_password_fields(numbers)
        now = time.perf_counter()
        for n in numbers:
            start = self.written.pop(n, None)
            if start is not None:
                self.held.append(now - start)


class RecordingMail:
    """Delegates to the real transport; keeps each mail handed to a session for the baseline."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.mails: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @contextmanager
    def session(self) -> Any:
        outer = self

        class _Session:
            def __init__(self, inner: Any) -> None:
                self._inner = inner

            def send(self, mail: Any, **kw: Any) -> Any:
                result = self._inner.send(mail, **kw)
                outer.mails.append(mail)
                return result

        with self._inner.session() as s:
            yield _Session(s)


def bare_loop(host: str, port: int, raws: list[tuple[str, str, bytes]]) -> float:
    start = time.perf_counter()
    conn = smtplib.SMTP(host, port, timeout=30)
    try:
        conn.ehlo()
        for mail_from, rcpt, raw in raws:
            conn.sendmail(mail_from, [rcpt], raw)
    finally:
        conn.quit()
    return time.perf_counter() - start


def one_round(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement on fresh peers and a fresh ERP; prints its figures, returns the ratios."""
    n = args.customers
    with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp, child(_smtp_child) as smtp, \
            child(_sandbox_child) as shop:
        smtp_host, smtp_port = smtp.recv()
        shop_url, client_id, client_secret = shop.recv()
        tmp_path = Path(tmp)
        erp_url = f"sqlite:///{tmp_path / 'erp.db'}"
        erp = erp_fixtures.create_address_table(erp_url, "adressen", password_field=PASSWORD_FIELD)
        erp_fixtures.insert_addresses(erp_url, "adressen", [
            {"number": 100000 + i, "email": f"kunde{100000 + i}@example.com", "salutation": "Frau",
             "first_name": "Jana", "last_name": f"Schäfer {i}", "street": "Ringstraße 7", "zip": "20095",
             "city": "Hamburg", "country": "DE"} for i in range(n)])
        settings = build_settings(erp, shop_url, client_id, smtp_host, smtp_port,
                                  f"sqlite:///{tmp_path / 'state.db'}")
        mail_settings = settings.mail.model_copy(update={"batch_size": args.batch})
        settings = settings.model_copy(update={"mail": mail_settings})
        state = open_state(settings.daemon.state_url)
        ctx = build_context(settings, client_secret, state)
        timed, recording = TimedErp(ctx.erp), RecordingMail(ctx.mail)
        ctx.erp, ctx.mail = timed, recording

        in_send = 0.0
        real_send_due = credentials.send_due
        flow_cpu = CpuMeter({"flow": os.getpid(), "shop": shop.pid, "smtp": smtp.pid})

        def timed_send_due(*a: Any, **kw: Any) -> None:
            nonlocal in_send
            t0 = time.perf_counter()
            try:
                with flow_cpu:
                    real_send_due(*a, **kw)
            finally:
                in_send += time.perf_counter() - t0

        credentials.send_due = timed_send_due  # erp_to_shop calls it through the module
        try:
            t0 = time.perf_counter()
            with gc_paused():  # the pause a cycle runs under (syncd.shell.scheduler.CycleRunner)
                erp_to_shop.settle_password_fields(ctx)
                report = erp_to_shop.run_erp_to_shop(ctx)
            cycle = time.perf_counter() - t0
        finally:
            credentials.send_due = real_send_due
        mails = report.counts["mailed"]
        smtp.send("count")
        accepted = smtp.recv()
        assert mails == n == accepted, (mails, n, accepted, dict(report.counts))
        assert not ctx.erp.numbers_with_password(), "password fields left set"

        raws = []
        for mail in recording.mails:
            encoded = encode_message(mail, sender=ctx.mail.sender(mail.sender))
            raws.append((encoded.envelope_from, encoded.envelope_to, encoded.data))
        bare_runs = []
        for _ in range(3):
            with CpuMeter({"client": os.getpid(), "smtp": smtp.pid}) as meter:
                bare_runs.append((bare_loop(smtp_host, smtp_port, raws), meter))
        bare, bare_cpu = sorted(bare_runs, key=lambda run: run[0])[1]
        state.close()

    flow_rate = mails / in_send
    bare_rate = len(raws) / bare
    held = sorted(timed.held)
    p95 = held[int(0.95 * (len(held) - 1))]
    print(f"whole cycle (push+link+credentials): {cycle:7.2f} s  {mails / cycle:8.1f} mails/s")
    print(f"credentials part (send_due):         {in_send:7.2f} s  {flow_rate:8.1f} mails/s")
    print(f"bare smtplib loop, one connection:   {bare:7.2f} s  {bare_rate:8.1f} mails/s (median of 3)")
    print(f"ratio credentials/bare: {flow_rate / bare_rate:5.2f}  (goal >= 0.7)")
    print(f"ratio whole cycle/bare: {(mails / cycle) / bare_rate:5.2f}")
    print(f"password in ERP field: median {statistics.median(held):.3f} s  p95 {p95:.3f} s  "
          f"max {held[-1]:.3f} s  over {len(held)} passwords (goal: median < 1 s)")
    bound = None
    if flow_cpu.available:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        f, b = flow_cpu.spent, bare_cpu.spent
        total = sum(f.values())
        floor = total / cores
        bound = bare / floor
        print(f"CPU s, credentials part: flow {f['flow']:.2f} + shop {f['shop']:.2f} + SMTP server "
              f"{f['smtp']:.2f} = {total:.2f} on {cores} cores ({total / in_send:.2f} cores busy)")
        print(f"CPU s, bare loop:        client {b['client']:.2f} + SMTP server {b['smtp']:.2f}")
        print(f"this machine's bound for the credentials part: {total:.2f} / {cores} = {floor:.2f} s, "
              f"so the ratio cannot exceed {bound:.2f} here")
    return {"ratio": flow_rate / bare_rate, "cycle": (mails / cycle) / bare_rate,
            "held": statistics.median(held), "held_max": held[-1], "bound": bound}


def positive(text: str) -> int:
    """argparse type: a whole number >= 1, else a clear usage error naming the value."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=positive, default=2000)
    parser.add_argument("--batch", type=positive, default=100, help="[mail] batch_size")
    parser.add_argument("--ahead", type=positive, default=pipeline.SHOP_CALLS_AHEAD,
                        help="batches whose shop call runs while one is mailed")
    parser.add_argument("--rounds", type=positive, default=3,
                        help="independent measurements (the flow and its peers share this machine's cores)")
    args = parser.parse_args()
    pipeline.SHOP_CALLS_AHEAD = args.ahead
    configure_logging("console", "warning", stream=sys.stderr)
    print(f"{args.customers} new customers per round (mail batch {args.batch}, "
          f"shop calls ahead {args.ahead})")
    rounds = []
    for r in range(args.rounds):
        print(f"--- round {r + 1} of {args.rounds}")
        rounds.append(one_round(args))
    ratios = sorted(x["ratio"] for x in rounds)
    print(f"=== credentials/bare over {len(rounds)} rounds: median {statistics.median(ratios):.2f} "
          f"(min {ratios[0]:.2f}, max {ratios[-1]:.2f}; goal >= 0.7); whole cycle/bare median "
          f"{statistics.median(x['cycle'] for x in rounds):.2f}")
    held = statistics.median(x["held"] for x in rounds)
    print(f"=== password in ERP field: median of medians {held:.3f} s, "
          f"max {max(x['held_max'] for x in rounds):.3f} s (goal: median < 1 s)")


if __name__ == "__main__":
    main()
