"""http(s):// objects: the same report as a local scan of the same bytes, only the ranges the
readers need (asserted from the server's request log), and every server failure mode an
``error`` (never ``safe``), except transient ones that a retry overcomes."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import ckptguard
from ckptguard import FileVerdict
from ckptguard._policy import resolve_policy
from ckptguard._remote import RemoteOptions
from ckptguard._remote._scan import scan_object
from ckptguard._results import FileRecord
from tests._remote.corpus import comparable
from tests._remote.servers import Behaviour, RangeServer, range_server


@pytest.fixture
def corpus(remote_corpus: tuple[Path, dict[str, bytes]]) -> tuple[Path, dict[str, bytes]]:
    return remote_corpus


@pytest.fixture
def server() -> Iterator[RangeServer]:
    with range_server() as srv:
        yield srv


def test_http_scan_equals_local_scan_on_hostile_and_benign_corpora(
    corpus: tuple[Path, dict[str, bytes]], server: RangeServer
) -> None:
    tmp, objects = corpus
    server.objects.update(objects)
    names = sorted(objects)
    remote = ckptguard.scan([server.url(n) for n in names])
    local = ckptguard.scan([str(tmp / "local" / n) for n in names])
    assert len(remote.files) == len(local.files) == len(names)
    for name, r, loc in zip(names, remote.files, local.files, strict=True):
        assert r.path == server.url(name)
        assert comparable(r, r.path) == comparable(loc, loc.path), name
        assert r.bytes_read is not None and r.bytes_read <= len(objects[name]), name
    assert remote.exit_code == local.exit_code == 2
    verdicts = {r.verdict for r in remote.files if "hostile/" in r.path}
    assert FileVerdict.SAFE not in verdicts
    assert not (tmp / "MARKER").exists()


def _checkpoint(n_tensors: int = 12, numel: int = 250_000) -> bytes:
    buf = io.BytesIO()
    torch.save({f"layer{i}.weight": torch.full((numel,), float(i)) for i in range(n_tensors)}, buf)
    return buf.getvalue()


def _tensor_spans(data: bytes) -> list[tuple[int, int]]:
    """[start, stop) of every tensor record's data (zipfile's reading of the archive)."""
    spans = []
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            if "/data/" in info.filename:
                name_len = len(info.filename.encode())
                local = data[info.header_offset : info.header_offset + 30]
                extra_len = int.from_bytes(local[28:30], "little")
                start = info.header_offset + 30 + name_len + extra_len
                spans.append((start, start + info.compress_size))
    return spans


def test_http_reads_only_directory_headers_and_pickle_never_a_tensor_record(
    server: RangeServer,
) -> None:
    data = _checkpoint()
    server.objects["big.pt"] = data
    rep = ckptguard.scan(server.url("big.pt")).files[0]
    assert rep.verdict is FileVerdict.SAFE
    ranges = [r.range for r in server.requests("big.pt")]
    assert all(r is not None for r in ranges)
    tail = len(data) - (22 + 0xFFFF)  # the end-record search window every zip reader reads
    for start, stop in ranges:  # type: ignore[misc]
        for t0, t1 in _tensor_spans(data):
            overlap = min(stop, t1) - max(start, t0)
            # a tensor record is never read, but for the 6 bytes the zip reader checks for the
            # .npy magic (numpy.load opens such a member as an array)
            probe = start <= t0 and stop == t0 + 6
            assert overlap <= 0 or probe or start >= tail, (start, stop, t0, t1)
    assert rep.bytes_read == sum(stop - start for start, stop in ranges)  # type: ignore[misc]
    assert rep.bytes_read < 100_000 < len(data)


def test_legacy_file_reads_the_pickles_and_storage_counts_only(server: RangeServer) -> None:
    buf = io.BytesIO()
    sd = {f"w{i}": torch.zeros(500_000) for i in range(6)}
    torch.save(sd, buf, _use_new_zipfile_serialization=False)
    data = buf.getvalue()
    server.objects["legacy.pt"] = data
    rep = ckptguard.scan(server.url("legacy.pt")).files[0]
    assert rep.verdict is FileVerdict.SAFE and rep.format == "pytorch-legacy"
    big = [r.range for r in server.requests("legacy.pt") if r.range and r.range[1] - r.range[0] > 8]
    assert max(stop for _, stop in big) <= 64 << 10  # the pickles' prefix: no storage data
    assert rep.bytes_read is not None and rep.bytes_read < 70_000 < len(data)


def _scan(server: RangeServer, name: str, **opts: object) -> FileRecord:
    rec = scan_object(
        (server.url(name), False),
        resolve_policy(),
        RemoteOptions(backoff=0.01, **opts),  # type: ignore[arg-type]
    )
    assert isinstance(rec, FileRecord)
    return rec


def _rule(rec: FileRecord) -> str:
    assert rec.verdict is FileVerdict.ERROR, rec
    return rec.findings[0].rule


@pytest.mark.parametrize(
    ("behaviour", "rule"),
    [
        (Behaviour("status", status=403), "remote-forbidden"),
        (Behaviour("status", status=401), "remote-forbidden"),
        (Behaviour("status", status=410), "remote-not-found"),
        (Behaviour("status", status=503), "remote-unavailable"),
        (Behaviour("status", status=400), "remote-http-error"),
        (Behaviour("short-body"), "remote-truncated"),
        (Behaviour("cut"), "remote-truncated"),
        (Behaviour("long-length"), "remote-size-mismatch"),
        (Behaviour("wrong-range"), "remote-size-mismatch"),
        (Behaviour("wrong-total"), "remote-size-mismatch"),
        (Behaviour("change-etag"), "remote-changed"),
        (Behaviour("ignore-range-no-length"), "remote-size-mismatch"),
    ],
    ids=lambda v: v.mode + str(v.status) if isinstance(v, Behaviour) else v,
)
def test_misbehaving_server_is_an_error_never_safe(
    server: RangeServer, behaviour: Behaviour, rule: str
) -> None:
    server.objects["m.pt"] = _checkpoint(4, 20_000)
    server.behaviour["m.pt"] = behaviour
    assert _rule(_scan(server, "m.pt", retries=2)) == rule


def test_missing_object_is_remote_not_found(server: RangeServer) -> None:
    rep = ckptguard.scan(server.url("nope.pt")).files[0]
    assert rep.verdict is FileVerdict.ERROR
    assert rep.findings[0].rule == "remote-not-found"
    assert "nope.pt" in rep.path and rep.hint


def test_timeout_is_remote_timeout(server: RangeServer) -> None:
    server.objects["slow.pt"] = _checkpoint(2, 1000)
    server.behaviour["slow.pt"] = Behaviour("slow", delay=1.0)
    assert _rule(_scan(server, "slow.pt", timeout=0.2, retries=1)) == "remote-timeout"


def test_500_then_success_is_retried_and_scanned(server: RangeServer) -> None:
    data = _checkpoint(2, 1000)
    server.objects["flaky.pt"] = data
    server.behaviour["flaky.pt"] = Behaviour("fail-then-ok", failures=2)
    rec = _scan(server, "flaky.pt", retries=3)
    assert rec.verdict is FileVerdict.SAFE
    statuses = [r.status for r in server.requests("flaky.pt")]
    assert statuses[:2] == [500, 500] and set(statuses[2:]) == {206}


def test_500_beyond_the_retries_is_an_error(server: RangeServer) -> None:
    server.objects["down.pt"] = _checkpoint(2, 1000)
    server.behaviour["down.pt"] = Behaviour("fail-then-ok", failures=10)
    assert _rule(_scan(server, "down.pt", retries=2)) == "remote-unavailable"
    assert len(server.requests("down.pt")) == 3


def test_server_ignoring_range_is_read_whole_within_the_cap(server: RangeServer) -> None:
    data = _checkpoint(2, 1000)
    server.objects["whole.pt"] = data
    server.behaviour["whole.pt"] = Behaviour("ignore-range")
    rec = _scan(server, "whole.pt")
    assert rec.verdict is FileVerdict.SAFE
    assert rec.bytes_read == len(data)
    assert len(server.requests("whole.pt")) == 1


def test_server_ignoring_range_beyond_the_cap_is_an_error(server: RangeServer) -> None:
    server.objects["whole.pt"] = _checkpoint(2, 100_000)
    server.behaviour["whole.pt"] = Behaviour("ignore-range")
    assert _rule(_scan(server, "whole.pt", max_whole=100_000)) == "remote-no-range"


def test_hostile_payload_behind_a_range_ignoring_server_is_still_dangerous(
    corpus: tuple[Path, dict[str, bytes]], server: RangeServer
) -> None:
    _, objects = corpus
    name = next(n for n in objects if n.startswith("hostile/zip/"))
    server.objects[name] = objects[name]
    server.behaviour[name] = Behaviour("ignore-range")
    assert _scan(server, name).verdict is FileVerdict.DANGEROUS


def test_cli_reports_urls_in_sarif_and_summary(server: RangeServer) -> None:
    import json
    import subprocess
    import sys

    from tests.factories import data_pkl_zip

    server.objects["a.pt"] = _checkpoint(2, 1000)
    server.objects["bad.pt"] = data_pkl_zip(b"cos\nsystem\n(S'true'\ntR.")
    url, bad = server.url("a.pt"), server.url("bad.pt")
    run = [sys.executable, "-m", "ckptguard", "scan"]
    sarif = subprocess.run([*run, bad, "--sarif", "-"], capture_output=True, text=True, check=False)
    assert sarif.returncode == 1, sarif.stderr
    results = json.loads(sarif.stdout)["runs"][0]["results"]
    assert results
    for r in results:
        assert r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == bad
    human = subprocess.run([*run, url], capture_output=True, text=True, check=False)
    assert human.returncode == 0
    assert " read of " in human.stdout
    usage = subprocess.run([*run, "x.pt", "--include", "*.pt"], capture_output=True, text=True)
    assert usage.returncode == 2 and "--include" in usage.stderr
