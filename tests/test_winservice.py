"""The Windows service's portable parts: clear errors off Windows, the action mapping over a
stand-in service manager, and the loop that runs `syncd run` until the stop request."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from syncd import winservice
from syncd.errors import ConfigError, SyncdError


class FakeManager:
    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[tuple] = []
        self.fail = fail

    def _call(self, *call):
        self.calls.append(call)
        if call[0] == self.fail:
            err = OSError("Access is denied.")
            err.strerror = "Access is denied."
            raise err

    def install(self, name, config):
        self._call("install", name, config)

    def remove(self, name):
        self._call("remove", name)

    def start(self, name):
        self._call("start", name)

    def stop(self, name):
        self._call("stop", name)

    def restart(self, name):
        self._call("restart", name)


def test_module_imports_cleanly_in_a_fresh_interpreter():
    import subprocess

    out = subprocess.run(
        [sys.executable, "-W", "error", "-c",
         "import syncd.winservice as w; print(hasattr(w, 'SyncdService'))"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(sys.platform == "win32")


@pytest.mark.skipif(sys.platform == "win32", reason="checks the behaviour off Windows")
@pytest.mark.parametrize("action", ["install", "remove", "start", "stop"])
def test_off_windows_every_action_says_where_to_look(action, tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text("")
    with pytest.raises(ConfigError, match="only on Windows.*systemd/syncd.service"):
        winservice.service_command(action, config_path=cfg)


def test_unknown_action_lists_the_allowed_ones():
    with pytest.raises(ConfigError) as err:
        winservice.service_command("reboot", api=FakeManager())
    assert "reboot" in str(err.value) and "install, remove, start, stop" in str(err.value)


def test_install_needs_an_existing_config(tmp_path):
    manager = FakeManager()
    with pytest.raises(ConfigError, match="--config"):
        winservice.service_command("install", api=manager)
    with pytest.raises(ConfigError, match="not found"):
        winservice.service_command("install", config_path=tmp_path / "missing.toml", api=manager)
    assert manager.calls == [], "nothing may be registered for a bad request"


def test_actions_map_to_the_service_manager(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text("")
    manager = FakeManager()
    sentence = winservice.service_command("install", config_path=cfg, api=manager)
    assert str(cfg.resolve()) in sentence and "Windows-Dienst syncd installiert" in sentence
    for action in ("start", "stop", "remove"):
        assert "Windows service syncd" in winservice.service_command(action, api=manager)
    assert winservice.restart_service(api=manager) == "syncd"
    assert manager.calls == [
        ("install", "syncd", str(cfg.resolve())),
        ("start", "syncd"),
        ("stop", "syncd"),
        ("remove", "syncd"),
        ("restart", "syncd"),
    ]


def test_service_manager_refusal_is_a_runtime_error():
    with pytest.raises(SyncdError, match="start failed: Access is denied") as err:
        winservice.service_command("start", api=FakeManager(fail="start"))
    assert not isinstance(err.value, ConfigError)


def test_service_loop_runs_the_daemon_until_the_stop_request(tmp_path):
    """The loop hands the daemon its stop event: a Daemon built inside `run` (as the CLI does)
    stops when the service manager's stop request arrives."""
    from syncd.daemon import Daemon
    from syncd.state.db import open_state
    from tests.test_daemon import Recorder, build_context_for, make_settings

    settings = make_settings(tmp_path)
    store = open_state(settings.daemon.state_url)
    rec = Recorder()
    seen_args = []

    def fake_cli(args):
        seen_args.append(args)
        daemon = Daemon(settings, build_context=build_context_for(store),
                        jobs={"erp-to-shop": rec.erp_to_shop}, store=store, install_signals=False)
        return daemon.run()

    loop = winservice.ServiceLoop(r"C:\ProgramData\syncd\config.toml", run_cli=fake_cli)
    result = []
    t = threading.Thread(target=lambda: result.append(loop.run()))
    t.start()
    deadline = time.monotonic() + 10
    while rec.count("erp-to-shop") < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    loop.stop()
    t.join(10)
    store.close()
    assert result == [0]
    assert seen_args == [["--log-format", "json", "--config", r"C:\ProgramData\syncd\config.toml", "run"]]
    from syncd import daemon as daemon_module

    assert daemon_module._external_stop is None, "the stop event is handed back after the run"
