import pytest

from syncd.config.durations import parse_duration
from syncd.config.loader import default_config_path
from syncd.config.model import default_state_url


@pytest.mark.parametrize(
    "text, seconds",
    [("60s", 60.0), ("5m", 300.0), ("1h30m", 5400.0), ("250ms", 0.25), ("1d", 86400.0), (" 2M ", 120.0),
     ("1.5s", 1.5), ("1h 30m", 5400.0)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["60", "", "5 minutes", "m5", "5x", "1h-30m", 60, 1.5, True, None])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_platform_default_paths(monkeypatch):
    monkeypatch.setattr("sys.platform", "linux")
    assert str(default_config_path()) == "/etc/syncd/config.toml"
    assert default_state_url() == "sqlite:////var/lib/syncd/state.db"
    monkeypatch.setattr("sys.platform", "win32")
    monkeypatch.setenv("PROGRAMDATA", r"D:\PD")
    assert str(default_config_path()).replace("\\", "/").endswith("D:/PD/syncd/config.toml")
    assert default_state_url() == "sqlite:///D:/PD/syncd/state.db"
