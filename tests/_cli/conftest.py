"""Checkpoints for the CLI tests, made at test time (torch.save; hostile ones opcode by opcode)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import factories as F
from tests.pickleasm import system

LFS_POINTER = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    b"size 1336934528\n"
)


@dataclass(frozen=True)
class Files:
    root: Path
    safe: Path
    training: Path
    enum: Path
    dangerous: Path
    truncated: Path
    lfs: Path
    marker: Path  # the hostile pickle would create this file if it were ever executed
    enum_global: str


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    root = tmp_path_factory.mktemp("cli-ckpts")
    safe = F.state_dict(root / "state_dict.pt")
    training = F.training_checkpoint(root / "training.pt")
    enum = F.user_enum_checkpoint(root / "enum.ckpt")
    marker = root / "PWNED"
    dangerous = root / "evil.pt"
    dangerous.write_bytes(system(f"touch {marker}"))  # never loaded
    data = safe.read_bytes()
    truncated = root / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    lfs = root / "model.ckpt"
    lfs.write_bytes(LFS_POINTER)
    return Files(
        root=root,
        safe=safe,
        training=training,
        enum=enum,
        dangerous=dangerous,
        truncated=truncated,
        lfs=lfs,
        marker=marker,
        enum_global=F.USER_ENUM,
    )


@pytest.fixture(autouse=True)
def _isolated_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No $CKPTGUARD_POLICY and no pyproject.toml above the working directory."""
    monkeypatch.delenv("CKPTGUARD_POLICY", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.chdir(tmp_path)
