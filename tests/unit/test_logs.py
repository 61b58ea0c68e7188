import io
import json
import logging

import pytest
import structlog

from syncd.core import redaction
from syncd.shell.logs import configure_logging, parse_level, reset_logging


def test_registered_value_and_password_key_never_rendered(captured_logs):
    secret = "Zx9-very-secret-Q"
    log = structlog.get_logger("syncd.test")
    with redaction.sensitive(secret):
        log.info("sending", detail=f"pw is {secret}", password="hunter2-plain", nested={"token": "abc123"})
        try:
            raise RuntimeError(f"shop refused {secret}")
        except RuntimeError:
            log.exception("failed")
    text = captured_logs.text
    assert secret not in text
    assert "hunter2-plain" not in text
    assert "abc123" not in text
    events = captured_logs.events()
    assert events[0]["event"] == "sending"
    assert events[0]["password"] == redaction.MASK
    assert redaction.MASK in events[0]["detail"]
    # exception text is rendered, and redacted
    assert "RuntimeError" in events[1]["exception"]
    assert redaction.MASK in events[1]["exception"]


def test_stdlib_logging_goes_through_the_same_chain(captured_logs):
    secret = "std-lib-secret-777"
    with redaction.sensitive(secret):
        logging.getLogger("sqlalchemy.engine").warning("connect failed for %s", secret)
        try:
            raise ValueError(secret)
        except ValueError:
            logging.getLogger("urllib3").exception("boom")
    assert secret not in captured_logs.text
    events = captured_logs.events()
    assert events[0]["logger"] == "sqlalchemy.engine"
    assert "ValueError" in events[1]["exception"]


def test_inline_password_in_free_text_is_masked(captured_logs):
    structlog.get_logger().error(
        "odbc", detail="DRIVER={X};UID=sa;PWD=Geheim99;SERVER=db", url="x password=abc"
    )
    text = captured_logs.text
    assert "Geheim99" not in text
    assert "password=abc" not in text
    assert "UID=sa" in text  # only the secret goes, the rest stays readable


def test_json_is_default_off_a_terminal_and_level_filters():
    buf = io.StringIO()
    try:
        assert configure_logging(None, "warning", stream=buf) == "json"
        structlog.get_logger("syncd").info("hidden")
        structlog.get_logger("syncd").warning("shown", platform="shop")
        lines = [json.loads(x) for x in buf.getvalue().splitlines()]
        assert [e["event"] for e in lines] == ["shown"]
        assert lines[0]["platform"] == "shop" and lines[0]["level"] == "warning"
        assert lines[0]["timestamp"].endswith("Z")
    finally:
        reset_logging()


def test_console_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    buf = Tty()
    try:
        assert configure_logging(None, "info", stream=buf) == "console"
        with redaction.sensitive("console-secret-1"):
            structlog.get_logger().info("hello", value="console-secret-1")
        out = buf.getvalue()
        assert "hello" in out and "console-secret-1" not in out
        assert not out.lstrip().startswith("{")
    finally:
        reset_logging()


def test_reconfigure_does_not_duplicate_handlers():
    buf = io.StringIO()
    try:
        configure_logging("json", "info", stream=buf)
        configure_logging("json", "info", stream=buf)
        structlog.get_logger().info("once")
        assert len(buf.getvalue().splitlines()) == 1
    finally:
        reset_logging()


def test_bad_level_and_format_are_refused():
    with pytest.raises(ValueError, match="log level"):
        parse_level("loud")
    with pytest.raises(ValueError, match="log format"):
        configure_logging("xml", "info", stream=io.StringIO())


def test_contact_account_keys_are_logged_by_their_label(captured_logs):
    log = structlog.get_logger("syncd.test")
    log.info("one", address=-100010002, platform="shop")
    log.info("many", addresses=[10001, -100010002, "-420000017"], accounts=3, cycle=-100010002)
    structlog.contextvars.bind_contextvars(address=-100010001)
    try:
        log.info("bound")
    finally:
        structlog.contextvars.unbind_contextvars("address")
    one, many, bound = captured_logs.events()
    assert one["address"] == "10001-2"
    assert many["addresses"] == [10001, "10001-2", "42000-17"] and many["accounts"] == 3
    assert many["cycle"] == -100010002  # not an account field: left as it is
    assert bound["address"] == "10001-1"
