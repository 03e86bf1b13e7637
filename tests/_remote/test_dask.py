"""Scale-out on a Dask LocalCluster with process workers: the same report and exit code as a
local run, merged in input order; a worker killed mid-run has its files re-run elsewhere,
never dropped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

import ckptguard  # noqa: E402
from tests._remote.corpus import build, comparable  # noqa: E402
from tests._remote.servers import Behaviour, RangeServer, range_server  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.Client]:
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None
        ) as lc,
        distributed.Client(lc) as client,
    ):
        yield client


@pytest.fixture
def server() -> Iterator[RangeServer]:
    with range_server() as srv:
        yield srv


def test_dask_scan_equals_local_scan(
    cluster: distributed.Client, server: RangeServer, tmp_path: Path
) -> None:
    objects = build(tmp_path)
    server.objects.update(objects)
    names = sorted(objects)
    urls = [server.url(n) for n in names]
    on_cluster = ckptguard.scan(urls, client=cluster)
    here = ckptguard.scan(urls)
    local = ckptguard.scan([str(tmp_path / "local" / n) for n in names])
    assert [f.path for f in on_cluster.files] == urls
    for a, b, c in zip(on_cluster.files, here.files, local.files, strict=True):
        assert a == b
        assert comparable(a, a.path) == comparable(c, c.path)
    assert on_cluster.exit_code == here.exit_code == local.exit_code
    assert not (tmp_path / "MARKER").exists()


def test_killed_worker_has_its_files_rerun_elsewhere(
    cluster: distributed.Client, server: RangeServer, tmp_path: Path
) -> None:
    objects = {k: v for k, v in build(tmp_path, hostile=False).items() if k.startswith("benign/")}
    names = []
    for i in range(6):
        for name, data in objects.items():
            copy = f"{i}/{name}"
            server.objects[copy] = data
            server.behaviour[copy] = Behaviour("slow", delay=0.15)
            names.append(copy)
    before = cluster.run(os.getpid)
    victim = next(iter(before.values()))

    def kill() -> None:
        time.sleep(1.0)
        os.kill(victim, signal.SIGKILL)

    killer = threading.Thread(target=kill)
    killer.start()
    rep = ckptguard.scan([server.url(n) for n in names], client=cluster)
    killer.join()
    assert [f.path for f in rep.files] == [server.url(n) for n in names]
    assert not [f for f in rep.files if f.findings and f.findings[0].rule == "remote-worker-lost"]
    expected = {n: ckptguard.scan(server.url(f"0/{n}")).files[0].verdict for n in objects}
    for name, f in zip(names, rep.files, strict=True):
        assert f.verdict is expected[name.split("/", 1)[1]], f
    cluster.wait_for_workers(2, timeout=60)
    assert victim not in cluster.run(os.getpid).values()  # it really died (and was replaced)


def test_cli_dask_flag(cluster: distributed.Client, server: RangeServer, tmp_path: Path) -> None:
    objects = build(tmp_path, hostile=False)
    server.objects.update(objects)
    url = server.url("benign/sd.pt")
    proc = subprocess.run(
        [sys.executable, "-m", "ckptguard", "scan", "--json", "--dask",
         cluster.scheduler.address, url, server.url("damaged/sd_cut_half.pt")],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    doc = json.loads(proc.stdout)
    assert proc.returncode == doc["exit_code"] == 2
    assert [f["verdict"] for f in doc["files"]] == ["safe", "error"]
    assert all(f["bytes_read"] for f in doc["files"])
