"""s3:// through a local S3 server (moto in server mode, the way s3fs tests itself): prefixes
listed recursively and filtered, the same report as a local scan, and only the ranges the
readers need (from the server's request log)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto")

import ckptguard
from ckptguard import FileVerdict
from tests._remote.corpus import comparable
from tests._remote.servers import S3Server, s3_server

BUCKET = "models"


@pytest.fixture(scope="module")
def s3(
    remote_corpus: tuple[Path, dict[str, bytes]],
) -> Iterator[tuple[S3Server, Path, dict[str, bytes]]]:
    tmp, objects = remote_corpus
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    old = {k: os.environ.get(k) for k in [*env, "AWS_ENDPOINT_URL"]}
    with s3_server() as server:
        os.environ.update(env, AWS_ENDPOINT_URL=server.endpoint)
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
        fs = s3fs.S3FileSystem(**server.storage_options())  # type: ignore[arg-type]
        import boto3

        boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1").create_bucket(
            Bucket=BUCKET
        )
        # the fast tests need a part of the corpus; the slow one uploads the rest
        fs.pipe({f"{BUCKET}/corpus/{n}": d for n, d in objects.items() if not _later(n)})
        fs.invalidate_cache()
        try:
            yield server, tmp, objects
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            s3fs.S3FileSystem.clear_instance_cache()


def _later(name: str) -> bool:
    return name.startswith(("hostile/plain/", "hostile/npy/", "hostile/row/"))


@pytest.mark.slow
def test_s3_prefix_scan_equals_local_scan(s3: tuple[S3Server, Path, dict[str, bytes]]) -> None:
    import s3fs

    server, _, objects = s3
    fs = s3fs.S3FileSystem(**server.storage_options())  # type: ignore[arg-type]
    fs.pipe({f"{BUCKET}/corpus/{n}": d for n, d in objects.items() if _later(n)})
    fs.invalidate_cache()
    s3fs.S3FileSystem.clear_instance_cache()
    _check_prefix(s3, "")


@pytest.mark.parametrize("sub", ["benign/", "damaged/", "notes/", "hostile/zip/", "red/"])
def test_s3_sub_prefix_scan_equals_local_scan(
    s3: tuple[S3Server, Path, dict[str, bytes]], sub: str
) -> None:
    _check_prefix(s3, sub)


def _check_prefix(s3: tuple[S3Server, Path, dict[str, bytes]], sub: str) -> None:
    _, tmp, _ = s3
    prefix = f"s3://{BUCKET}/corpus/"
    remote = ckptguard.scan(prefix + sub)
    local = ckptguard.scan(str(tmp / "local" / sub))
    by_name = {f.path[len(prefix) :]: f for f in remote.files}
    local_by_name = {str(Path(f.path).relative_to(tmp / "local")): f for f in local.files}
    assert set(by_name) == set(local_by_name)
    for name, rep in by_name.items():
        loc = local_by_name[name]
        assert comparable(rep, rep.path) == comparable(loc, loc.path), name
    # the listing skips what the directory walk skips, for the same reasons
    assert sorted((s.path[len(prefix) :], s.reason) for s in remote.skipped) == sorted(
        (str(Path(s.path).relative_to(tmp / "local")), s.reason) for s in local.skipped
    )
    assert remote.exit_code == local.exit_code


def test_include_and_exclude_globs_filter_the_listing(
    s3: tuple[S3Server, Path, dict[str, bytes]],
) -> None:
    rep = ckptguard.scan(
        f"s3://{BUCKET}/corpus/", include=["benign/*"], exclude=["*.pkl", "legacy*"]
    )
    names = sorted(f.path.rsplit("/corpus/", 1)[1] for f in rep.files)
    assert names == ["benign/empty.bin", "benign/sd.pt", "benign/train.ckpt"]
    assert rep.files[names.index("benign/sd.pt")].verdict is FileVerdict.SAFE


def test_s3_reads_only_what_the_verdict_needs(
    s3: tuple[S3Server, Path, dict[str, bytes]],
) -> None:
    server, _, objects = s3
    key = "corpus/benign/train.ckpt"
    before = len(server.log)
    rep = ckptguard.scan(f"s3://{BUCKET}/{key}").files[0]
    assert rep.verdict is FileVerdict.SAFE
    ranges = [r.range for r in server.log[before:] if r.path.endswith(key)]
    assert ranges and all(r is not None for r in ranges)  # never a whole-object GET
    assert rep.bytes_read == sum(b - a for a, b in ranges)  # type: ignore[misc]
    assert rep.bytes_read is not None and rep.bytes_read <= len(objects["benign/train.ckpt"])


def test_missing_s3_object_and_bucket_are_clear_errors(
    s3: tuple[S3Server, Path, dict[str, bytes]],
) -> None:
    rep = ckptguard.scan([f"s3://{BUCKET}/corpus/nope.pt", "s3://no-such-bucket/x.pt"])
    assert [f.verdict for f in rep.files] == [FileVerdict.ERROR, FileVerdict.ERROR]
    assert {f.findings[0].rule for f in rep.files} <= {"remote-not-found", "remote-forbidden"}
    assert rep.exit_code == 2


def test_cli_scans_a_bucket_prefix_with_json_bytes_read(
    s3: tuple[S3Server, Path, dict[str, bytes]],
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ckptguard", "scan", f"s3://{BUCKET}/corpus/benign/", "--json",
         "--exclude", "empty.bin"],
        capture_output=True, text=True, env=os.environ.copy(), timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["exit_code"] == 0
    assert all(
        isinstance(f["bytes_read"], int) and f["bytes_read"] <= f["size"] for f in doc["files"]
    )
    human = subprocess.run(
        [sys.executable, "-m", "ckptguard", "scan", f"s3://{BUCKET}/corpus/benign/sd.pt"],
        capture_output=True, text=True, env=os.environ.copy(), timeout=120, check=False,
    )  # fmt: skip
    assert human.returncode == 0, human.stderr
    assert " read of " in human.stdout and "scanned" in human.stdout


def test_storage_options_reach_the_filesystem(
    s3: tuple[S3Server, Path, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _, _ = s3
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    rep = ckptguard.scan(
        f"s3://{BUCKET}/corpus/benign/sd.pt", storage_options=server.storage_options()
    )
    assert rep.files[0].verdict is FileVerdict.SAFE
    s3fs.S3FileSystem.clear_instance_cache()
