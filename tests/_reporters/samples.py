"""Hand-built report objects covering every verdict (reporters are tested without the scanner)."""

from __future__ import annotations

from ckptguard._results import FileReport, Finding, GlobalRef, ScanReport, Skipped
from ckptguard._verdict import FileVerdict, Severity, Use, Verdict

SAFE_GLOBAL = GlobalRef(
    module="torch._utils",
    name="_rebuild_tensor_v2",
    verdict=Verdict.SAFE,
    reason="torch weights-only allowlist",
    count=12,
    uses=(Use.CALL,),
    locations=("archive/data.pkl",),
)
ENUM_GLOBAL = GlobalRef(
    module="deepafx_st.utils",
    name="DSPMode",
    verdict=Verdict.UNKNOWN,
    reason="not in any vetted profile",
    count=2,
    uses=(Use.CALL,),
    locations=("archive/data.pkl",),
)
SYSTEM_GLOBAL = GlobalRef(
    module="os",
    name="system",
    verdict=Verdict.DANGEROUS,
    reason="runs a shell command",
    count=1,
    uses=(Use.CALL,),
    locations=("pickle",),
)

SAFE_FILE = FileReport(
    path="ckpts/model.pt",
    format="pytorch-zip",
    verdict=FileVerdict.SAFE,
    globals=(SAFE_GLOBAL,),
    findings=(Finding("zip-info", Severity.INFO, "archive name is 'model'"),),
    pickles=("archive/data.pkl",),
    size=2048,
)
REVIEW_FILE = FileReport(
    path="ckpts/with enum.ckpt",
    format="pytorch-zip",
    verdict=FileVerdict.REVIEW,
    globals=(ENUM_GLOBAL, SAFE_GLOBAL),
    pickles=("archive/data.pkl",),
    size=4096,
    hint="if you trust these classes: ...",
)
DANGEROUS_FILE = FileReport(
    path="ckpts/evil.pt",
    format="pickle",
    verdict=FileVerdict.DANGEROUS,
    globals=(SYSTEM_GLOBAL, ENUM_GLOBAL),
    findings=(
        Finding(
            "pickle-reduce-dangerous", Severity.DANGEROUS, "calls os.system", location="pickle@2"
        ),
    ),
    pickles=("pickle",),
    size=40,
    hint="this file tries to run code: do not load it",
)
ERROR_FILE = FileReport(
    path="ckpts/lfs.ckpt",
    format="git-lfs-pointer",
    verdict=FileVerdict.ERROR,
    findings=(
        Finding("scan-error", Severity.ERROR, "this is a Git LFS pointer, not the checkpoint"),
    ),
    size=131,
    hint="run: git lfs pull --include ckpts/lfs.ckpt",
)

REPORT = ScanReport(
    files=(SAFE_FILE, REVIEW_FILE, DANGEROUS_FILE, ERROR_FILE),
    skipped=(Skipped("ckpts/README.md", "not a checkpoint (text)"),),
)
