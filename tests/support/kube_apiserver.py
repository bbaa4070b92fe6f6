"""A real Kubernetes API server (etcd + kube-apiserver) for integration tests.

The envtest approach of controller-runtime: no kubelet, no scheduler, no controller
manager, just the API. Build the binaries once with ``scripts/build-kube-apiserver.sh``.

    with KubeApiServer() as kube:
        kubernetes.config.load_kube_config(config_file=str(kube.kubeconfig_path))
        ...

What follows from "API server only":
- nothing runs Pods, and no controller acts: a Deployment's status stays empty until a test
  patches it (``PATCH .../deployments/NAME/status``, allowed to the admin user);
- no garbage collector: deleting an owner leaves its dependents (assert ownerReferences);
- no namespace controller: a deleted namespace stays ``Terminating`` for good (use a fresh
  namespace per test instead of deleting it);
- no service-account controller: namespaces get no ``default`` ServiceAccount, so the
  ServiceAccount admission plugin rejects Pods there unless a test creates it (Deployments,
  ConfigMaps, custom resources etc. are not affected).

Authentication is by static bearer tokens: ``admin`` (group ``system:masters``, so it is
allowed everything) plus the ordinary users passed as ``users``, whom RBAC allows nothing
until a test grants it (``system:authenticated`` discovery aside). Needs the ``cryptography``
package for the certificates and the service-account key.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, NoReturn, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = [
    "ADMIN_GROUP",
    "ADMIN_USER",
    "KubeApiServer",
    "KubeApiServerError",
    "MissingBinary",
    "binaries_available",
    "find_binaries",
]

ADMIN_USER = "admin"
ADMIN_GROUP = "system:masters"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
BUILD_SCRIPT = "scripts/build-kube-apiserver.sh"

_APISERVER_ENV = "ALPHASPT_KUBE_APISERVER"
_ETCD_ENV = "ALPHASPT_ETCD"
_ADDRESS_IN_USE = "address already in use"


class MissingBinary(RuntimeError):
    """kube-apiserver or etcd is not built (run scripts/build-kube-apiserver.sh)."""


class KubeApiServerError(RuntimeError):
    """The control plane did not start (the message carries the tail of its logs)."""


def _cache_bin_dir() -> Path:
    base = os.environ.get("ALPHASPT_CACHE_DIR") or str(Path.home() / ".cache" / "alphaspt")
    return Path(base) / "k8s" / "bin"


def _find(name: str, env: str) -> Path:
    override = os.environ.get(env)
    path = Path(override) if override else _cache_bin_dir() / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        where = f"${env}={override}" if override else str(path)
        raise MissingBinary(
            f"{name} not found at {where}: run `{BUILD_SCRIPT}` once "
            f"(builds kube-apiserver and etcd into {_cache_bin_dir()}), "
            f"or point ${env} at a {name} binary"
        )
    return path


def find_binaries() -> tuple[Path, Path]:
    """Return (kube-apiserver, etcd); raise MissingBinary if either is absent."""
    return _find("kube-apiserver", _APISERVER_ENV), _find("etcd", _ETCD_ENV)


def binaries_available() -> bool:
    """True when find_binaries() would succeed (for pytest skip conditions)."""
    try:
        find_binaries()
    except MissingBinary:
        return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_pki(directory: Path) -> tuple[Path, Path, Path, Path, Path]:
    """Write CA, serving cert/key and service-account key pair (ECDSA P-256: fast)."""
    now = dt.datetime.now(dt.UTC)
    not_before, not_after = now - dt.timedelta(hours=1), now + dt.timedelta(days=7)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alphaspt-test-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    first_service_ip = next(ipaddress.IPv4Network(SERVICE_CLUSTER_IP_RANGE).hosts())
    sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes"),
        x509.DNSName("kubernetes.default"),
        x509.DNSName("kubernetes.default.svc"),
        x509.DNSName("kubernetes.default.svc.cluster.local"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(first_service_ip),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    sa_key = ec.generate_private_key(ec.SECP256R1())

    paths = (
        directory / "ca.crt",
        directory / "apiserver.crt",
        directory / "apiserver.key",
        directory / "sa.key",
        directory / "sa.pub",
    )
    contents = (
        ca_cert.public_bytes(serialization.Encoding.PEM),
        cert.public_bytes(serialization.Encoding.PEM),
        _pem_key(key),
        _pem_key(sa_key),
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    for path, content in zip(paths, contents, strict=True):
        path.write_bytes(content)
        path.chmod(0o600)
    return paths


def _cleanup(procs: list[subprocess.Popen[bytes]], workdir: Path) -> None:
    for proc in reversed(procs):
        _stop_process(proc, 5.0)
    shutil.rmtree(workdir, ignore_errors=True)


def _stop_process(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()


class KubeApiServer:
    """etcd + kube-apiserver on free loopback ports, in a private temporary directory.

    Use as a context manager, or call start() and stop(). After start():
    ``url`` (https://127.0.0.1:PORT), ``token`` (admin bearer token), ``kubeconfig_path``
    (admin kubeconfig, CA inlined), ``ca_path`` (PEM of the CA that signed the serving
    cert); ``token_for(user)`` and ``write_kubeconfig(path, user)`` for the other users.
    """

    def __init__(
        self,
        *,
        users: Mapping[str, Sequence[str]] | None = None,
        extra_args: Sequence[str] = (),
        start_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        apiserver_binary: Path | None = None,
        etcd_binary: Path | None = None,
    ) -> None:
        """users: ordinary user name -> groups (each gets a bearer token);
        extra_args: more kube-apiserver flags (later ones win, e.g.
        ``--disable-admission-plugins=ServiceAccount``)."""
        if users and ADMIN_USER in users:
            raise ValueError(f"{ADMIN_USER!r} is the built-in admin user")
        self._users: dict[str, tuple[str, ...]] = {
            ADMIN_USER: (ADMIN_GROUP,),
            **{name: tuple(groups) for name, groups in (users or {}).items()},
        }
        self._tokens = {name: secrets.token_urlsafe(24) for name in self._users}
        self._extra_args = tuple(extra_args)
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._apiserver_binary = apiserver_binary
        self._etcd_binary = etcd_binary

        self._workdir: Path | None = None
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._logs: list[IO[bytes]] = []
        self._url = ""
        self._etcd_url = ""
        self._ca_path: Path | None = None
        self._kubeconfig_path: Path | None = None
        self.startup_seconds: float | None = None
        # Children and temp dir, also for the finalizer (garbage collection or interpreter
        # exit), which must not hold a reference to self.
        self._procs: list[subprocess.Popen[bytes]] = []
        self._finalizer: weakref.finalize[..., KubeApiServer] | None = None

    # -- public API ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        self._require_started()
        return self._url

    @property
    def etcd_url(self) -> str:
        self._require_started()
        return self._etcd_url

    @property
    def token(self) -> str:
        return self._tokens[ADMIN_USER]

    @property
    def ca_path(self) -> Path:
        self._require_started()
        assert self._ca_path is not None
        return self._ca_path

    @property
    def kubeconfig_path(self) -> Path:
        self._require_started()
        assert self._kubeconfig_path is not None
        return self._kubeconfig_path

    @property
    def workdir(self) -> Path:
        self._require_started()
        assert self._workdir is not None
        return self._workdir

    @property
    def running(self) -> bool:
        return all(p is not None and p.poll() is None for p in (self._etcd, self._apiserver))

    def token_for(self, user: str) -> str:
        return self._tokens[user]

    def write_kubeconfig(self, path: Path, user: str = ADMIN_USER) -> Path:
        """Write a kubeconfig for ``user`` (JSON, which is valid YAML) and return its path."""
        self._require_started()
        ca_data = base64.b64encode(self.ca_path.read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "alphaspt-test",
                    "cluster": {"server": self._url, "certificate-authority-data": ca_data},
                }
            ],
            "users": [{"name": user, "user": {"token": self._tokens[user]}}],
            "contexts": [
                {
                    "name": f"{user}@alphaspt-test",
                    "context": {"cluster": "alphaspt-test", "user": user, "namespace": "default"},
                }
            ],
            "current-context": f"{user}@alphaspt-test",
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path

    def start(self) -> Self:
        if self._workdir is not None:
            raise RuntimeError("KubeApiServer already started")
        apiserver_bin = self._apiserver_binary or _find("kube-apiserver", _APISERVER_ENV)
        etcd_bin = self._etcd_binary or _find("etcd", _ETCD_ENV)
        began = time.monotonic()
        self._workdir = Path(tempfile.mkdtemp(prefix="alphaspt-kube-"))
        self._finalizer = weakref.finalize(self, _cleanup, self._procs, self._workdir)
        try:
            pki = _write_pki(self._workdir)
            self._ca_path = pki[0]
            self._write_token_file()
            for attempt in range(3):  # a free port can be taken between probe and bind
                try:
                    self._launch(apiserver_bin, etcd_bin, pki)
                    self._wait_ready(began)
                    break
                except KubeApiServerError as exc:
                    self._kill_processes()
                    if _ADDRESS_IN_USE not in str(exc) or attempt == 2:
                        raise
            self._kubeconfig_path = self.write_kubeconfig(self._workdir / "kubeconfig")
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Terminate kube-apiserver, then etcd (SIGTERM, SIGKILL after stop_timeout);
        remove the temporary directory. Safe to call more than once."""
        self._kill_processes()
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals -----------------------------------------------------------------------

    def _require_started(self) -> None:
        if self._workdir is None or not self._url:
            raise RuntimeError("KubeApiServer is not started")

    def _write_token_file(self) -> None:
        assert self._workdir is not None
        lines = []
        for uid, (name, groups) in enumerate(self._users.items(), start=1):
            lines.append(f'{self._tokens[name]},{name},uid-{uid},"{",".join(groups)}"')
        path = self._workdir / "tokens.csv"
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        assert self._workdir is not None
        log = (self._workdir / log_name).open("wb")
        self._logs.append(log)
        proc = subprocess.Popen(
            args,
            cwd=self._workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal is for pytest, not for them
        )
        self._procs.append(proc)
        return proc

    def _launch(self, apiserver_bin: Path, etcd_bin: Path, pki: tuple[Path, ...]) -> None:
        assert self._workdir is not None
        ca, cert, key, sa_key, sa_pub = pki
        client_port, peer_port, secure_port = _free_port(), _free_port(), _free_port()
        self._etcd_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        data_dir = self._workdir / "etcd"
        shutil.rmtree(data_dir, ignore_errors=True)
        self._etcd = self._spawn(
            [
                str(etcd_bin),
                "--name=default",
                f"--data-dir={data_dir}",
                f"--listen-client-urls={self._etcd_url}",
                f"--advertise-client-urls={self._etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync",  # throwaway data: much faster writes
                "--log-level=warn",
            ],
            "etcd.log",
        )
        self._url = f"https://127.0.0.1:{secure_port}"
        self._apiserver = self._spawn(
            [
                str(apiserver_bin),
                f"--etcd-servers={self._etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={secure_port}",
                f"--tls-cert-file={cert}",
                f"--tls-private-key-file={key}",
                f"--client-ca-file={ca}",
                f"--token-auth-file={self._workdir / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={sa_pub}",
                f"--service-account-signing-key-file={sa_key}",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                "--v=1",
                *self._extra_args,
            ],
            "kube-apiserver.log",
        )

    def _wait_ready(self, began: float) -> None:
        assert self._ca_path is not None
        context = ssl.create_default_context(cafile=str(self._ca_path))
        # No ProxyHandler from the environment: loopback must not go through HTTPS_PROXY.
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
        request = urllib.request.Request(
            f"{self._url}/readyz", headers={"Authorization": f"Bearer {self.token}"}
        )
        deadline = began + self._start_timeout
        last_error = "no answer yet"
        while True:
            for name, proc in (("etcd", self._etcd), ("kube-apiserver", self._apiserver)):
                if proc is not None and proc.poll() is not None:
                    self._fail(f"{name} exited with code {proc.returncode}")
            try:
                with opener.open(request, timeout=2) as response:
                    if response.status == 200:
                        return
                    last_error = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                last_error = f"HTTP {exc.code}: {exc.read()[-2000:].decode(errors='replace')}"
            except (OSError, ssl.SSLError) as exc:
                last_error = str(exc)
            if time.monotonic() > deadline:
                self._fail(
                    f"kube-apiserver not ready at {self._url}/readyz after "
                    f"{self._start_timeout:.0f}s (last: {last_error})"
                )
            time.sleep(0.1)

    def _fail(self, reason: str) -> NoReturn:
        assert self._workdir is not None
        raise KubeApiServerError(
            f"{reason}\n--- kube-apiserver.log (tail) ---\n"
            f"{_tail(self._workdir / 'kube-apiserver.log')}\n"
            f"--- etcd.log (tail) ---\n{_tail(self._workdir / 'etcd.log')}"
        )

    def _kill_processes(self) -> None:
        # The API server first: it would otherwise spin on a vanished etcd.
        _stop_process(self._apiserver, self._stop_timeout)
        _stop_process(self._etcd, self._stop_timeout)
        self._apiserver = self._etcd = None
        self._procs.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()
