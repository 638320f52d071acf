"""The local PostgreSQL server that jdbc sources of the local environment pull from.

PostgreSQL refuses to run as root. Run as root (a container, CI), the server runs as the
``postgres`` account through ``runuser``, its data folder in a new folder under ``/tmp``
(the state folder may sit below folders that account cannot enter), whose path the state
folder records (``postgres-home``); otherwise the data folder is
``<state_dir>/postgres/data``. Only TCP on 127.0.0.1: no Unix socket, whose
path length would limit where the state folder can be.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from streamlake.errors import ServiceError, SetupError

log = logging.getLogger(__name__)

# initdb's superuser; the local connections log in as it.
LOCAL_USER = "streamlake"
SERVICE_ACCOUNT = "postgres"
BINARY_FOLDERS = "/usr/lib/postgresql/*/bin"


def server_binaries() -> Path:
    """The folder holding ``initdb`` and ``postgres``: on PATH, else Debian's newest."""
    on_path = shutil.which("initdb")
    if on_path is not None:
        return Path(on_path).resolve().parent
    found = sorted(Path("/").glob(BINARY_FOLDERS.lstrip("/")), key=lambda p: p.parent.name)
    for folder in reversed(found):
        if (folder / "initdb").exists():
            return folder
    raise SetupError(
        "the PostgreSQL server binaries (initdb, postgres) are not installed",
        "install Debian's postgresql package (apt-get install postgresql), or run "
        "`make test`, which installs it",
    )


def running_as_root() -> bool:
    return os.geteuid() == 0


@dataclass(frozen=True)
class LocalPostgres:
    """Where the local server listens and keeps its files."""

    host: str
    port: int
    state_dir: Path

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def home_record(self) -> Path:
        return self.state_dir / "postgres-home"

    @property
    def home(self) -> Path:
        """The server's own folder (data, and the password while initdb runs)."""
        if not running_as_root():
            return self.state_dir / "postgres"
        try:
            return Path(self.home_record.read_text().strip())
        except FileNotFoundError:
            return self.state_dir / "postgres"  # not made yet: prepare() makes it

    def make_home(self) -> Path:
        """The server's folder, made afresh (owner-only, unpredictable name) when root."""
        if not running_as_root():
            self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
            return self.home
        if self.home_record.exists():
            shutil.rmtree(self.home, ignore_errors=True)
        home = Path(tempfile.mkdtemp(prefix="streamlake-pg-"))
        self.home_record.write_text(f"{home}\n")
        shutil.chown(home, SERVICE_ACCOUNT, SERVICE_ACCOUNT)
        return home

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def password_file(self) -> Path:
        """The superuser's password, readable by this account only."""
        return self.state_dir / "postgres-password"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / "postgres.log"

    def password(self) -> str:
        return self.password_file.read_text().strip()

    def as_service_account(self, command: list[str]) -> list[str]:
        if not running_as_root():
            return command
        runuser = shutil.which("runuser")
        if runuser is None:
            raise SetupError(
                "PostgreSQL does not run as root and runuser is missing",
                "run as another user, or install util-linux",
            )
        return [runuser, "-u", SERVICE_ACCOUNT, "--", *command]

    def prepare(self) -> None:
        """Create the cluster on first start (initdb), with a new superuser password."""
        if (self.data_dir / "PG_VERSION").exists() and self.password_file.exists():
            return
        binaries = server_binaries()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        home = self.make_home()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        password = secrets.token_urlsafe(18)
        self.password_file.write_text(password + "\n")
        self.password_file.chmod(0o600)
        initdb_password = home / "initdb-password"
        initdb_password.write_text(password + "\n")
        if running_as_root():
            shutil.chown(initdb_password, SERVICE_ACCOUNT, SERVICE_ACCOUNT)
        command = [
            str(binaries / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            LOCAL_USER,
            f"--pwfile={initdb_password}",
            "-A",
            "scram-sha-256",
            "-E",
            "UTF8",
            "--no-locale",
        ]
        try:
            result = subprocess.run(
                self.as_service_account(command), capture_output=True, text=True, timeout=120
            )
        finally:
            initdb_password.unlink(missing_ok=True)
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            raise ServiceError(
                "initdb failed: " + (lines[-1] if lines else f"exit code {result.returncode}"),
                service="postgres",
                address=self.address,
            )
        log.info("created the PostgreSQL cluster in %s", self.data_dir)

    def command(self) -> list[str]:
        server = str(server_binaries() / "postgres")
        return self.as_service_account(
            [
                server,
                "-D",
                str(self.data_dir),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-c",
                "unix_socket_directories=",
                "-c",
                "log_min_messages=warning",
            ]
        )
