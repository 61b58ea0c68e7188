"""The README's systemd install, as written, on this machine without systemd.

The README's steps run below a temporary root (``/etc/syncd`` -> ``ROOT/etc/syncd``); then the
unit's ``ExecStart`` (parsed from ``systemd/syncd.service``) and ``syncd check`` run as an
unprivileged user (uid 65534, as a ``DynamicUser=`` gets a fresh uid with no rights beyond
"others"), with the environment the unit gives: its ``Environment=`` lines, ``$CREDENTIALS_DIRECTORY``
holding private copies of its ``LoadCredential=`` files, ``$STATE_DIRECTORY`` owned by that user,
``UMask=``. systemd itself is never started. The test runs as root (it changes users).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from syncd.config.loader import load_settings
from tests.support import erp_fixtures, mailserver
from tests.support import wired_env as wired
from tests.support.shop_fixtures import store_login
from tests.support.wired_env import SAMPLE, TABLE, Env, config_text

sandbox = wired.sandbox  # fixture
smtp_server_factory, smtp_tls_files = mailserver.smtp_server_factory, mailserver.smtp_tls_files

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "syncd.service"
SERVICE_UID = SERVICE_GID = 65534  # nobody: a user that owns nothing here, like a DynamicUser
SKIPPED_STEPS = ("python3 -m venv", "cp systemd/", "systemctl", "systemd-run", "journalctl")

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0, reason="runs as root on Linux"),
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)"),
]


# --- reading the README and the unit ---------------------------------------------------------------

def readme_systemd_steps() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Linux (systemd)"):]
    block = section[section.index("```sh\n") + 6:]
    block = block[:block.index("```")]
    lines, current = [], ""
    for raw in block.splitlines():
        current += raw.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        if current.strip() and not current.lstrip().startswith("#"):
            lines.append(current.strip())
        current = ""
    return lines


def unit_settings(path: Path = UNIT) -> dict[str, list[str]]:
    """Key -> every value of it in [Service] (continuation lines joined, comments dropped)."""
    out: dict[str, list[str]] = {}
    section = None
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}{key}", []).append(value)
    return {k.removeprefix("[Service]"): v for k, v in out.items() if k.startswith("[Service]")}


def unit_environment(settings: dict[str, list[str]]) -> dict[str, str]:
    env = {}
    for value in settings.get("Environment", []):
        for assignment in shlex.split(value):
            key, _, val = assignment.partition("=")
            env[key] = val
    return env


def load_credentials(settings: dict[str, list[str]]) -> dict[str, str]:
    return dict(v.split(":", 1) for v in settings.get("LoadCredential", []))


# --- the service user ---------------------------------------------------------------------------------

def _hidden_ancestor(path: Path) -> Path | None:
    """The first folder above ``path`` that others may not enter (e.g. /root of a pyenv)."""
    for parent in reversed(path.parents):
        if parent != Path("/") and not parent.stat().st_mode & stat.S_IXOTH:
            return parent
    return None


def as_service_user(argv: list[str], root: Path) -> list[str]:
    """``argv`` as uid/gid 65534 without supplementary groups. A real install lives in
    /opt/syncd/venv; this test's interpreter, venv or checkout may live below a folder others
    cannot enter (a pyenv or a checkout under /root). Then the command runs in a private mount
    namespace where that folder is an open tmpfs holding only those trees: nothing else of it
    becomes readable, and the host sees no change."""
    drop = ["setpriv", f"--reuid={SERVICE_UID}", f"--regid={SERVICE_GID}", "--clear-groups", "--"]
    needed: dict[Path, set[str]] = {}
    for path in {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), REPO.resolve()}:
        hidden = _hidden_ancestor(path / "x")
        if hidden is not None:
            needed.setdefault(hidden, set()).add(path.relative_to(hidden).parts[0])
    if not needed:
        return [*drop, *argv]
    lines = ["set -e", "mount --make-rprivate /"]
    for i, (hidden, children) in enumerate(sorted(needed.items())):
        keep = root / f".host{i}"
        keep.mkdir(exist_ok=True)
        h, k = shlex.quote(str(hidden)), shlex.quote(str(keep))
        lines += [f"mount --bind {h} {k}", f"mount -t tmpfs -o mode=0755 tmpfs {h}"]
        for child in sorted(children):
            c = shlex.quote(child)
            lines += [f"mkdir {h}/{c}", f"mount --bind {k}/{c} {h}/{c}"]
    lines.append('exec "$@"')
    return ["unshare", "-m", "sh", "-c", "; ".join(lines), "sh", *drop, *argv]


# --- the installation -------------------------------------------------------------------------------

@pytest.fixture
def root():
    """A temporary "/" others can enter (pytest's own tmp folders are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="syncd-install-", dir="/tmp"))
    path.chmod(0o755)
    (path / "etc").mkdir(mode=0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_readme_steps(root: Path) -> list[str]:
    """The README's steps that set up /etc/syncd, below ``root``; returns the ones run."""
    ran = []
    for step in readme_systemd_steps():
        if step.startswith(SKIPPED_STEPS):
            continue
        # Everything else must only touch /etc/syncd: it is what this test stands in for.
        assert "/etc/syncd" in step, f"README step not covered by this test: {step}"
        local = step.replace("/etc/syncd", f"{root}/etc/syncd")
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", local], cwd=REPO, capture_output=True,
                              text=True, timeout=30)
        assert done.returncode == 0, f"README step failed: {step}\n{done.stderr}"
        ran.append(step)
    return ran


def test_the_readme_steps_create_every_credential_file_the_unit_loads(root):
    ran = run_readme_steps(root)
    assert any("config.toml" in s for s in ran)
    credentials = load_credentials(unit_settings())
    assert credentials, "the unit loads no credentials"
    for name, source in credentials.items():
        local = Path(source.replace("/etc/syncd", f"{root}/etc/syncd"))
        assert local.is_file(), f"LoadCredential={name}:{source}: the README's steps do not create it"
        assert stat.S_IMODE(local.stat().st_mode) & 0o077 == 0, f"{source} is readable by others"
    config = root / "etc/syncd/config.toml"
    probe = as_service_user(["test", "-r", str(config)], root)
    assert subprocess.run(probe, timeout=30).returncode == 0, "the service user cannot read the config"
    # The README's `syncd check` as the service user names the same credentials and keyring.
    [check] = [s for s in readme_systemd_steps() if s.startswith("systemd-run")]
    named = dict(re.findall(r"LoadCredential=([^:\s]+):(\S+)", check))
    assert named == credentials
    assert "DynamicUser=yes" in check and " check" in check
    for key, value in unit_environment(unit_settings()).items():
        if key == "PYTHON_KEYRING_BACKEND":
            assert f"Environment={key}={value}" in check


def _service_environment(root: Path, settings: dict[str, list[str]]) -> dict[str, str]:
    """What systemd gives the service: its own environment, not the caller's."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/",
           "LANG": "C.UTF-8", "USER": "syncd", "LOGNAME": "syncd"}
    for key, value in unit_environment(settings).items():
        env[key] = value.replace("/var/lib/syncd", f"{root}/var/lib/syncd")
    env["STATE_DIRECTORY"] = f"{root}/var/lib/syncd"
    env["CONFIGURATION_DIRECTORY"] = f"{root}/etc/syncd"
    env["CREDENTIALS_DIRECTORY"] = f"{root}/run/credentials/syncd.service"
    return env


def _exec_start(settings: dict[str, list[str]], root: Path, verb: str) -> list[str]:
    [line] = settings["ExecStart"]
    argv = shlex.split(line)
    assert argv[0] == "/opt/syncd/venv/bin/syncd" and "run" in argv, line
    argv[0] = str(Path(sys.prefix) / "bin" / "syncd")  # the README's venv is this test's venv
    argv = [a.replace("/etc/syncd", f"{root}/etc/syncd") for a in argv]
    argv[argv.index("run")] = verb
    return argv


@pytest.fixture
def installed(root, sandbox, smtp_server_factory, monkeypatch):  # noqa: F811
    """README steps run, the operator's edits done, systemd's part (state directory, credentials
    directory) prepared as systemd would for the dynamic user."""
    run_readme_steps(root)
    settings = unit_settings()
    credentials = load_credentials(settings)
    secret_file = {name: Path(src.replace("/etc/syncd", f"{root}/etc/syncd"))
                   for name, src in credentials.items()}
    secret_file["shop-secret"].write_text(sandbox.client_secret)
    secret_file["smtp-password"].write_text("Smtp-Svc-Pass-9")
    server = smtp_server_factory("starttls", users={"shop": "Smtp-Svc-Pass-9"})

    # The ERP database is another server's business: here a SQLite file the service may read.
    erp_dir = root / "erp"
    erp_dir.mkdir()
    erp_url = f"sqlite:///{erp_dir / 'erp.db'}"
    erp_fixtures.create_address_table(erp_url, TABLE, password_field=wired.FIELD)
    erp_fixtures.insert_addresses(erp_url, TABLE, SAMPLE)
    for p in (erp_dir, erp_dir / "erp.db"):
        os.chown(p, SERVICE_UID, SERVICE_GID)

    # systemd's part: StateDirectory= (owned by the user, StateDirectoryMode=) and the credentials.
    state = root / "var/lib/syncd"
    state.mkdir(parents=True)
    for p in (root / "var", root / "var/lib"):
        p.chmod(0o755)
    state.chmod(int(settings.get("StateDirectoryMode", ["0755"])[0], 8))
    os.chown(state, SERVICE_UID, SERVICE_GID)
    creds = root / "run/credentials/syncd.service"
    creds.mkdir(parents=True)
    for p in (root / "run", root / "run/credentials"):
        p.chmod(0o755)
    for name, src in secret_file.items():
        copy = creds / name
        shutil.copyfile(src, copy)
        copy.chmod(0o400)
        os.chown(copy, SERVICE_UID, SERVICE_GID)
    creds.chmod(0o500)
    os.chown(creds, SERVICE_UID, SERVICE_GID)

    # The operator's edit of the copied example: this machine's ERP, mail server and shop, the
    # secrets as credential: references. Written into the file the README created (its mode kept).
    ca = root / "etc/syncd/smtp-ca.pem"
    shutil.copyfile(server.ca_file, ca)
    ca.chmod(0o644)
    e = Env(root=state, config=root / "etc/syncd/config.toml", erp_url=erp_url, erp_db=erp_dir / "erp.db",
            state_db=state / "state.db", outbox=state / "outbox", shop=sandbox)
    text = config_text(e, poll="1s", mail=f"""transport = "smtp"
host = "127.0.0.1"
port = {server.port}
security = "starttls"
ca_file = "{ca}"
username = "shop"
password = "credential:smtp-password"
""")
    text = text.replace(f'client_secret = "env:{wired.SECRET_ENV}"',
                        'client_secret = "credential:shop-secret"')
    assert 'client_secret = "credential:shop-secret"' in text
    with open(e.config, "w", encoding="utf-8") as fh:  # keeps the mode the README gave it
        fh.write(text)
    monkeypatch.delenv(wired.SECRET_ENV, raising=False)
    load_settings(str(e.config))  # the edit is a valid configuration
    return root, e, server, settings


def _run_as_service(root: Path, settings, argv: list[str], **kwargs):
    umask = int(settings.get("UMask", ["0022"])[0], 8)
    return subprocess.Popen(as_service_user(argv, root), env=_service_environment(root, settings),
                            cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: os.umask(umask), **kwargs)  # noqa: PLW1509


def test_syncd_check_passes_as_the_service_user(installed):
    root, e, _server, settings = installed
    proc = _run_as_service(root, settings, _exec_start(settings, root, "check"))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert "all checks passed" in out


def test_the_units_exec_start_runs_as_the_service_user(installed):
    root, e, server, settings = installed
    proc = _run_as_service(root, settings, _exec_start(settings, root, "run"))
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if e.state_db.exists() and _finished_cycles(e) and len(server.messages) >= 2:
                break
            time.sleep(0.3)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert len(server.wait_for(2, timeout=5)) == 2
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    # What it wrote belongs to the service user and is private (UMask=0077).
    st = e.state_db.stat()
    assert st.st_uid == SERVICE_UID and stat.S_IMODE(st.st_mode) & 0o077 == 0
    for message in server.messages:
        to, password = read_mail_message(message)
        assert store_login(e.shop, to, password)
    assert "Smtp-Svc-Pass-9" not in out + err and e.shop.client_secret not in out + err


def _finished_cycles(e: Env) -> int:
    try:
        with sqlite3.connect(f"file:{e.state_db}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT count(*) FROM cycles WHERE finished IS NOT NULL").fetchone()[0]
    except sqlite3.Error:
        return 0


def read_mail_message(message) -> tuple[str, str]:
    body = message.get_body(preferencelist=("plain",)).get_content()
    return str(message["To"]).split("<")[-1].rstrip(">"), re.search(r"Passwort:\s+(\S+)", body).group(1)


def test_service_install_on_linux_exits_with_the_code_the_readme_states(tmp_path, capsys):
    from syncd.shell.cli import run_cli

    text = (REPO / "README.md").read_text(encoding="utf-8")
    [row] = [line for line in text.splitlines() if line.startswith("| `syncd service install")]
    stated = re.search(r"exit (\d)", row)
    assert stated, f"the README's command table does not state the exit code: {row}"
    code = run_cli(["--config", str(tmp_path / "none.toml"), "service", "install"])
    _, err = capsys.readouterr()
    assert code == int(stated.group(1))
    assert "systemd" in err
