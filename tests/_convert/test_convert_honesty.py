"""convert says which types it turned into plain data, and how to get them back, and the way
back works everywhere: ckptguard.load, patched(restore_types=True), run --restore-types.

The user's situation (deepafx-st): after convert, ``dsp_mode == DSPMode.TRAIN_INFER`` is False
because the Enum member became its value. convert must say so, and the advice must work.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import ckptguard
from ckptguard._cli import main
from ckptguard._convert import convert_file
from ckptguard._policy import default_policy
from tests import factories
from tests.subproc import run_python


def _converted(tmp_path: Path) -> Path:
    src = factories.user_enum_checkpoint(tmp_path / "enum.pt")
    dst = tmp_path / "plain.pt"
    res = convert_file(str(src), str(dst), policy=default_policy())
    assert res.plain_types == {factories.USER_ENUM: "its value"}
    return dst


def test_convert_result_lists_plain_types(tmp_path: Path) -> None:
    src = factories.namespace_checkpoint(tmp_path / "ns.pt")
    res = convert_file(str(src), str(tmp_path / "out.pt"), policy=default_policy())
    assert res.plain_types == {"argparse.Namespace": "dict of its state"}


def test_cli_says_after_converting_what_became_plain_data_and_the_way_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = factories.user_enum_checkpoint(tmp_path / "enum.pt")
    dst = tmp_path / "plain.pt"
    assert main(["convert", str(src), str(dst)]) == 0
    out = capsys.readouterr().out
    assert f"types now stored as plain data: {factories.USER_ENUM} -> its value" in out
    advice = next(line for line in out.splitlines() if "to get the original objects back" in line)
    call = advice.split("back: ", 1)[1].split("), or", 1)[0] + ")"
    obj = eval(call, {"ckptguard": ckptguard})  # the advice, followed as printed
    assert obj["hparams"]["mode"] is factories.DSPMode.INFER
    assert f"ckptguard run --restore-types --allow {factories.USER_ENUM}" in out


def test_cli_json_has_plain_types(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    src = factories.user_enum_checkpoint(tmp_path / "enum.pt")
    assert main(["convert", str(src), str(tmp_path / "o.pt"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["plain_types"] == {factories.USER_ENUM: "its value"}


def test_plain_data_without_restore_types(tmp_path: Path) -> None:
    dst = _converted(tmp_path)
    assert ckptguard.load(dst)["hparams"]["mode"] == "infer"  # the trade-off, stated


def test_patched_restore_types_gives_the_enum_back(tmp_path: Path) -> None:
    dst = _converted(tmp_path)
    with ckptguard.patched(allow=[factories.USER_ENUM], restore_types=True):
        mode = torch.load(dst, weights_only=False)["hparams"]["mode"]
    assert mode is factories.DSPMode.INFER
    with ckptguard.patched(allow=[factories.USER_ENUM]):
        assert torch.load(dst)["hparams"]["mode"] == "infer"


def test_install_restore_types(tmp_path: Path) -> None:
    dst = _converted(tmp_path)
    ckptguard.install(allow=[factories.USER_ENUM], restore_types=True)
    try:
        assert torch.load(dst)["hparams"]["mode"] is factories.DSPMode.INFER
    finally:
        ckptguard.uninstall()


@pytest.mark.slow
def test_run_restore_types_in_a_real_process(tmp_path: Path) -> None:
    dst = _converted(tmp_path)
    app = tmp_path / "app.py"
    app.write_text(
        "import sys, torch\n"
        "from tests.factories import DSPMode\n"
        "mode = torch.load(sys.argv[1], weights_only=False)['hparams']['mode']\n"
        "print('enum' if mode is DSPMode.INFER else f'plain {mode!r}')\n"
    )
    plain = run_python("-m", "ckptguard", "run", str(app), str(dst), cwd=tmp_path)
    assert plain.stdout.strip() == "plain 'infer'", plain.stderr
    restored = run_python(
        "-m", "ckptguard", "run", "--restore-types", "--allow", factories.USER_ENUM, str(app),
        str(dst), cwd=tmp_path,
    )  # fmt: skip
    assert restored.stdout.strip() == "enum", restored.stderr


def test_refusal_hint_states_the_convert_trade_off(tmp_path: Path) -> None:
    src = factories.user_enum_checkpoint(tmp_path / "enum.pt")
    with pytest.raises(ckptguard.UnsafeCheckpointError) as info:
        ckptguard.load(src)
    hint = info.value.hint or ""
    assert "plain data" in hint and "restore_types=True" in hint


def test_scan_json_hint_states_the_convert_trade_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    src = factories.user_enum_checkpoint(tmp_path / "enum.pt")
    main(["scan", str(src), "--json"])
    doc = json.loads(capsys.readouterr().out)
    text = json.dumps(doc)
    assert "plain data" in text and "restore_types=True" in text
