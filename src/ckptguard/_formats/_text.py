"""Things saved under a checkpoint name that are not checkpoints: LFS pointers, web pages, text."""

from __future__ import annotations

from ._common import corrupt

_LFS = b"version https://git-lfs.github.com/spec/"
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<!--", b"<?xml")


def _stripped(head: bytes) -> bytes:
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    return head.lstrip().lower()


def is_text(head: bytes) -> bool:
    """Looks like human-readable text (UTF-8, no control bytes but whitespace)."""
    if not head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a multi-byte char cut at the end
            return False
        text = head[: exc.start].decode("utf-8")
    return all(c.isprintable() or c in "\t\r\n\f" for c in text)


def classify_text(head: bytes) -> str | None:
    if head.startswith(_LFS):
        return "git-lfs-pointer"
    if _stripped(head).startswith(_HTML_STARTS):
        return "html"
    if is_text(head):
        return "text"
    return None


def text_error(kind: str, head: bytes) -> Exception:
    if kind == "git-lfs-pointer":
        info = {}
        for line in head.decode("utf-8", "replace").splitlines():
            key, _, value = line.partition(" ")
            info[key] = value
        size = info.get("size", "?")
        return corrupt(
            f"this is a Git LFS pointer, not the model (the real file is {size} bytes, "
            f"{info.get('oid', 'unknown oid')})",
            hint="run `git lfs pull` (or `git lfs fetch && git lfs checkout`) in the repository",
            fmt=kind,
        )
    if kind == "html":
        return corrupt(
            "this is an HTML page, not a checkpoint: the download saved a web page (a login, "
            "redirect or error page)",
            hint="download the raw file (for the Hugging Face Hub use the /resolve/ URL, not "
            "/blob/), then scan it again",
            fmt=kind,
        )
    return corrupt(
        "this is a text file, not a checkpoint",
        hint="check that the path points at the model file",
        fmt="text",
    )
