"""The Windows service's portable parts: clear errors off Windows, the action mapping over a
stand-in service manager (``syncd.shell.service_control``), the loop that runs `syncd run` until the
stop request (``syncd.winservice``), and that the service host stays out of the CLI's imports."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from syncd import winservice
from syncd.core.errors import ConfigError, SyncdError
from syncd.shell import service_control


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
        service_control.service_command(action, config_path=cfg)


def test_unknown_action_lists_the_allowed_ones():
    with pytest.raises(ConfigError) as err:
        service_control.service_command("reboot", api=FakeManager())
    assert "reboot" in str(err.value) and "install, remove, start, stop" in str(err.value)


def test_install_needs_an_existing_config(tmp_path):
    manager = FakeManager()
    with pytest.raises(ConfigError, match="--config"):
        service_control.service_command("install", api=manager)
    with pytest.raises(ConfigError, match="not found"):
        service_control.service_command("install", config_path=tmp_path / "missing.toml", api=manager)
    assert manager.calls == [], "nothing may be registered for a bad request"


def test_actions_map_to_the_service_manager(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text("")
    manager = FakeManager()
    sentence = service_control.service_command("install", config_path=cfg, api=manager)
    assert str(cfg.resolve()) in sentence and "Windows-Dienst syncd installiert" in sentence
    for action in ("start", "stop", "remove"):
        assert "Windows service syncd" in service_control.service_command(action, api=manager)
    assert service_control.restart_service(api=manager) == "syncd"
    assert manager.calls == [
        ("install", "syncd", str(cfg.resolve())),
        ("start", "syncd"),
        ("stop", "syncd"),
        ("remove", "syncd"),
        ("restart", "syncd"),
    ]


def test_service_manager_refusal_is_a_runtime_error():
    with pytest.raises(SyncdError, match="start failed: Access is denied") as err:
        service_control.service_command("start", api=FakeManager(fail="start"))
    assert not isinstance(err.value, ConfigError)


def test_service_loop_runs_the_daemon_until_the_stop_request(tmp_path):
    """The loop hands the daemon its stop event: a Daemon built inside `run` (as the CLI does)
    stops when the service manager's stop request arrives."""
    from syncd.shell.daemon import Daemon
    from syncd.state.db import open_state
    from tests.e2e.test_daemon import Recorder, build_context_for, make_settings

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
    from syncd.shell import daemon_signals

    assert daemon_signals.external_stop() is None, "the stop event is handed back after the run"


class RecordingUtil:
    """Stands in for pywin32's win32serviceutil: records what the installer hands it."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def InstallService(self, cls_string, name, display, **kw):  # noqa: N802 - pywin32's name
        self.calls.append(("InstallService", cls_string, name, display, kw))

    def SetServiceCustomOption(self, name, option, value):  # noqa: N802 - pywin32's name
        self.calls.append(("SetServiceCustomOption", name, option, value))


def test_install_registers_the_service_class_by_its_stable_dotted_name(tmp_path):
    """Installed services keep the class string in the registry: it must name the class
    ``SyncdService`` in ``syncd.winservice`` (what pywin32's GetServiceClassString gave when the
    class was passed), without importing the service host."""
    import ast
    import importlib.util

    svc = type("Svc", (), {"SERVICE_AUTO_START": 2})
    util = RecordingUtil()
    cfg = tmp_path / "config.toml"
    cfg.write_text("")
    service_control.service_command("install", config_path=cfg, api=service_control._Pywin32(util, svc))
    install = util.calls[0]
    assert install[:4] == ("InstallService", "syncd.winservice.SyncdService", "syncd",
                           service_control.DISPLAY_NAME)
    assert install[4] == {"startType": 2, "description": service_control.DESCRIPTION}
    assert util.calls[1] == ("SetServiceCustomOption", "syncd", "config", str(cfg.resolve()))
    module, _, cls = install[1].rpartition(".")
    source = importlib.util.find_spec(module).origin
    tree = ast.parse(open(source, encoding="utf-8").read())
    assert cls in {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}


def test_the_cli_daemon_and_service_control_do_not_import_the_service_host():
    """The service host imports the CLI; nothing on the CLI's import path may import it back
    (the circle CLI -> daemon -> winservice -> CLI)."""
    import subprocess

    code = (
        "import sys, pkgutil, importlib, syncd.shell.cli\n"
        "for m in pkgutil.iter_modules(syncd.shell.cli.__path__):\n"
        "    importlib.import_module('syncd.shell.cli.' + m.name)\n"
        "import syncd.shell.daemon, syncd.shell.service_control\n"
        "import syncd.shell.bootstrap, syncd.shell.scheduler\n"
        "print('syncd.winservice' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
