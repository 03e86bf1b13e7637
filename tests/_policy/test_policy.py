"""The shipped policy data and the rules that apply it."""

from __future__ import annotations

import importlib
import pickle
import sys
from pathlib import Path

import pytest

from ckptguard import PolicyError, Verdict
from ckptguard._pickle import analyze_pickle
from ckptguard._policy import Policy, default_policy, resolve_policy
from ckptguard._policy._data import shipped
from ckptguard._policy._discovery import ENV_VAR


def _resolve(qualified: str) -> object:
    """Import the object a vetted entry names (tests only: never done by the scanner)."""
    parts = qualified.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(qualified)


def test_torch_profile_covers_torchs_own_weights_only_allowlist() -> None:
    from torch._weights_only_unpickler import _get_allowed_globals

    torch_names = set(_get_allowed_globals())
    missing = torch_names - set(shipped().profiles["torch"])
    assert not missing, f"torch allows these but the torch profile lacks them: {sorted(missing)}"


def test_every_entry_has_a_reason() -> None:
    data = shipped()
    tables = [*data.profiles.values(), data.dangerous_modules, data.dangerous_globals]
    for table in tables:
        for name, reason in table.items():
            assert reason.strip() and len(reason) > 8, name


# Entries that name another Python or numpy major version than the one installed.
_OTHER_VERSION = ("numpy.core.", "pathlib._local.", "builtins.NoneType")


@pytest.mark.parametrize("profile", ["torch", "numpy", "python", "omegaconf", "lightning"])
def test_vetted_entries_exist_in_the_installed_packages(profile: str) -> None:
    missing = []
    for name in shipped().profiles[profile]:
        if name.startswith(_OTHER_VERSION) and sys.version_info < (3, 13):
            continue
        if profile == "lightning" and not name.startswith("pytorch_lightning"):
            continue  # only pytorch-lightning is installed for the tests
        if profile == "numpy" and name.startswith("numpy.core."):
            continue
        try:
            _resolve(name)
        except (ImportError, AttributeError):
            missing.append(name)
    assert not missing, f"stale entries in profile {profile}: {missing}"


def test_no_vetted_entry_is_also_listed_dangerous() -> None:
    data = shipped()
    for profile in data.profiles.values():
        clash = set(profile) & set(data.dangerous_globals)
        assert not clash


def test_all_vetted_entries_classify_safe() -> None:
    default = default_policy()
    for pname, profile in shipped().profiles.items():
        # the dcp profile is off by default (ckptguard._dcp enables it for .metadata only)
        policy = (
            default if pname in default.profiles else Policy(profiles=(*default.profiles, pname))
        )
        for name in profile:
            module, _, attr = name.rpartition(".")
            assert policy.classify(module, attr)[0] is Verdict.SAFE, name


@pytest.mark.parametrize(
    "obj_factory",
    [
        lambda np: np.arange(5, dtype=np.float32),
        lambda np: np.float64(1.5),
        lambda np: np.int64(3),
        lambda np: np.random.get_state(),
        lambda np: np.random.default_rng(1),
        lambda np: np.random.RandomState(2),
        lambda np: np.ma.array([1, 2], mask=[0, 1]),
        lambda np: np.dtype("<U5"),
        lambda np: np.arange(3).astype("M8[s]"),
    ],
)
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_real_numpy_pickles_are_all_safe(obj_factory, protocol: int) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    analysis = analyze_pickle(pickle.dumps(obj_factory(np), protocol=protocol))
    policy = default_policy()
    for g in analysis.globals:
        assert policy.classify(g.module, g.name)[0] is Verdict.SAFE, (g.module, g.name)


def test_real_omegaconf_pickles_are_all_safe() -> None:
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"a": [1, {"b": None}], "s": "x", "f": 1.5, "t": True})
    policy = default_policy()
    for protocol in (2, 4):
        for g in analyze_pickle(pickle.dumps(cfg, protocol=protocol)).globals:
            assert policy.classify(g.module, g.name)[0] is Verdict.SAFE, (g.module, g.name)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("os", "system"),
        ("posix", "system"),
        ("subprocess", "Popen"),
        ("builtins", "eval"),
        ("builtins", "getattr"),
        ("torch", "load"),
        ("torch.serialization", "load"),
        ("torch.storage", "_load_from_bytes"),
        ("torch.jit._serialization", "load"),
        ("numpy.testing._private.utils", "runstring"),
        ("torch", "serialization.os.system"),  # protocol 4 attribute traversal
        ("posixpath", "os.system"),
        ("argparse", "Namespace.__init__.__globals__"),
        ("os ", "system"),  # malformed
        ("builtins", "eval\n"),
        ("", "x"),
        ("copyreg", "__newobj__"),
        ("functools", "partial"),
        ("operator", "methodcaller"),
    ],
)
def test_dangerous_globals(module: str, name: str) -> None:
    verdict, reason = default_policy().classify(module, name)
    assert verdict is Verdict.DANGEROUS, reason
    assert reason


def test_user_classes_are_unknown_then_allowed() -> None:
    p = default_policy()
    assert p.classify("deepafx_st.utils", "DSPMode")[0] is Verdict.UNKNOWN
    allowed = p.with_allowed(["deepafx_st.utils.DSPMode"])
    assert allowed.classify("deepafx_st.utils", "DSPMode")[0] is Verdict.ALLOWED
    assert allowed.classify("deepafx_st.utils", "Other")[0] is Verdict.UNKNOWN


def test_wildcard_allow_covers_the_names_of_one_module_only() -> None:
    p = default_policy().with_allowed(["mypkg.data.*"])
    assert p.classify("mypkg.data", "Dictionary")[0] is Verdict.ALLOWED
    assert p.classify("mypkg.data.dictionary", "Dictionary")[0] is Verdict.UNKNOWN  # submodule
    assert p.classify("mypkg.datax", "Thing")[0] is Verdict.UNKNOWN
    assert p.classify("mypkg", "data.Thing")[0] is Verdict.UNKNOWN  # another split


@pytest.mark.parametrize("name", ["os.system", "builtins.eval", "subprocess.*", "torch.jit.load"])
def test_dangerous_globals_can_never_be_allowed(name: str) -> None:
    with pytest.raises(PolicyError, match="cannot be allowed"):
        default_policy().with_allowed([name])


@pytest.mark.parametrize("name", ["nodots", "a..b", "mod.Na me", "", "1abc.X"])
def test_malformed_allow_entries_are_refused(name: str) -> None:
    with pytest.raises(PolicyError, match="invalid global name"):
        default_policy().with_allowed([name])


def test_allowed_global_in_wildcard_still_dangerous_if_listed() -> None:
    p = default_policy().with_allowed(["mypkg.evil.*", "mypkg.good.*"])
    deny = p.with_denied(["mypkg.evil.Loader"])
    assert deny.classify("mypkg.evil", "Loader")[0] is Verdict.DANGEROUS
    assert deny.classify("mypkg.good", "Thing")[0] is Verdict.ALLOWED


def test_profiles_can_be_restricted() -> None:
    p = Policy(profiles=("torch",))
    assert p.classify("numpy", "ndarray")[0] is Verdict.UNKNOWN
    assert p.classify("torch._utils", "_rebuild_tensor_v2")[0] is Verdict.SAFE
    with pytest.raises(PolicyError, match="unknown profile"):
        Policy(profiles=("nope",))


def test_policy_is_picklable_for_parallel_scans() -> None:
    p = default_policy().with_allowed(["a.B"])
    q = pickle.loads(pickle.dumps(p))
    assert q.classify("a", "B")[0] is Verdict.ALLOWED


# ---------------------------------------------------------------- discovery


def test_precedence_explicit_file_over_env_over_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.ckptguard]\nallow = ["from_pyproject.X"]\n')
    env_file = tmp_path / "env.toml"
    env_file.write_text('allow = ["from_env.X"]\n')
    explicit = tmp_path / "explicit.toml"
    explicit.write_text('allow = ["from_explicit.X"]\n')

    def verdicts(p: Policy) -> tuple[Verdict, ...]:
        return tuple(p.classify(m, "X")[0] for m in ("from_pyproject", "from_env", "from_explicit"))

    a, u = Verdict.ALLOWED, Verdict.UNKNOWN
    assert verdicts(resolve_policy(start_dir=tmp_path, environ={})) == (a, u, u)
    env = {ENV_VAR: str(env_file)}
    assert verdicts(resolve_policy(start_dir=tmp_path, environ=env)) == (u, a, u)
    assert verdicts(resolve_policy(policy=explicit, start_dir=tmp_path, environ=env)) == (u, u, a)


def test_nearest_pyproject_with_a_table_is_used(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.ckptguard]\nallow = ["root.X"]\n')
    sub = tmp_path / "pkg" / "deep"
    sub.mkdir(parents=True)
    (tmp_path / "pkg" / "pyproject.toml").write_text('[project]\nname = "pkg"\n')
    p = resolve_policy(start_dir=sub, environ={})
    assert p.classify("root", "X")[0] is Verdict.ALLOWED


def test_allow_argument_adds_on_top_of_the_source(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text('allow = [{ name = "a.X", reason = "ours" }]\n')
    p = resolve_policy(policy=f, allow=["b.Y"], environ={})
    assert p.classify("a", "X") == (Verdict.ALLOWED, "ours")
    assert p.classify("b", "Y")[0] is Verdict.ALLOWED


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("allow = [", "invalid TOML"),
        ("alow = []\n", "unknown key"),
        ("allow = 'a.B'\n", "must be a list"),
        ('allow = ["os.system"]\n', "cannot be allowed"),
        ("profiles = ['torch', 'x']\n", "unknown profile"),
    ],
)
def test_bad_policy_files_name_the_file(tmp_path: Path, text: str, match: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(PolicyError, match=match) as info:
        resolve_policy(policy=f, environ={})
    assert "bad.toml" in info.value.diagnostics()


def test_missing_policy_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        resolve_policy(policy=tmp_path / "nope.toml", environ={})


# ---------------------------------------------------------------- audit additions


def test_torch_profile_covers_torchs_tensor_rebuild_functions() -> None:
    from torch._weights_only_unpickler import _tensor_rebuild_functions

    names = {f"{f.__module__}.{f.__name__}" for f in _tensor_rebuild_functions()}
    assert names, "torch lists its tensor rebuild functions"
    assert names <= set(shipped().profiles["torch"])


# torch.* entries of the torch profile that torch's own weights-only allowlist does not name.
# Each is listed here on purpose: growing the profile beyond torch's list needs a decision.
_TORCH_PROFILE_EXTRAS = {
    "torch.torch_version.TorchVersion",  # a str subclass Lightning stores
    *(  # TorchScript's pickle helpers: identity functions (torch/jit/_pickle.py)
        f"torch.jit._pickle.{name}"
        for name in (
            "build_boollist", "build_doublelist", "build_intlist", "build_tensor_from_id",
            "build_tensorlist", "restore_type_tag",
        )
    ),
    *(
        f"torch.{layout}"  # layout constants: torch resolves them through _get_layout
        for layout in (
            "sparse_coo", "sparse_csr", "sparse_csc", "sparse_bsr", "sparse_bsc", "strided",
            "_mkldnn", "jagged",
        )
    ),
}  # fmt: skip


def test_torch_profile_adds_nothing_unreviewed_to_torchs_allowlist() -> None:
    from torch._weights_only_unpickler import _get_allowed_globals

    extra = set(shipped().profiles["torch"]) - set(_get_allowed_globals())
    assert extra <= _TORCH_PROFILE_EXTRAS, sorted(extra - _TORCH_PROFILE_EXTRAS)
    import torch

    for name in _TORCH_PROFILE_EXTRAS:
        if name.startswith("torch.") and name.count(".") == 1:
            assert isinstance(getattr(torch, name.split(".")[1]), torch.layout), name


def test_simple_toml_reader_agrees_with_tomllib_on_the_shipped_file() -> None:
    import tomllib

    from ckptguard._policy._data import POLICY_FILE
    from ckptguard._policy._toml import parse_simple_toml

    with open(POLICY_FILE, "rb") as f:
        text = f.read().decode("utf-8")
    assert parse_simple_toml(text) == tomllib.loads(text)


@pytest.mark.parametrize(
    "text",
    [
        'a = "x\\"y"\n',
        "a = 'x'\n",
        'a = """x"""\n',
        "[[t]]\n",
        'a = "x" # c\n',
        "a = 1\n",
        'a = ["x.y"]\n',
        'a = [\n  "x.y",\n',
        'a = [\n  "x",\n  1,\n]\n',
        'a = [\n"x"\n]\n',
        'a = "x"\na = "y"\n',
    ],
)
def test_simple_toml_reader_refuses_what_it_does_not_understand(text: str) -> None:
    from ckptguard._policy._toml import parse_simple_toml

    assert parse_simple_toml(text) is None


# Vetted profiles must hold nothing that can run code or touch files, processes or the network
# for some argument. These are the tempting ones that must stay out.
_NEVER_VETTED = [
    "pathlib.Path", "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib._local.Path",
    "builtins.getattr", "builtins.eval", "builtins.open", "builtins.type", "builtins.map",
    "builtins.sorted", "builtins.super", "builtins.__import__", "_codecs.decode",
    "_codecs.lookup", "_codecs.register", "codecs.open", "codecs.encode", "collections.namedtuple",
    "collections.UserDict", "functools.partial", "operator.attrgetter", "copyreg.__newobj__",
    "numpy.load", "numpy.memmap", "numpy.fromfile", "numpy.vectorize", "numpy.frompyfunc",
    "numpy.lib.format.read_array", "numpy.testing._private.utils.runstring",
    "torch.load", "torch.from_file", "torch.storage._load_from_bytes",
    "torch._utils._import_dotted_name", "torch.UntypedStorage", "torch.hub.load",
    "omegaconf.OmegaConf", "omegaconf._utils", "datetime.datetime.fromtimestamp",
]  # fmt: skip


@pytest.mark.parametrize("name", _NEVER_VETTED)
def test_capable_globals_are_not_vetted(name: str) -> None:
    module, _, attr = name.rpartition(".")
    assert default_policy().classify(module, attr)[0] is not Verdict.SAFE
    for profile in shipped().profiles.values():
        assert name not in profile


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("torch.utils.collect_env", "run"),  # a dangerous primitive named by the last part
        ("mypkg.tools", "popen"),
        ("builtins", "__build_class__"),  # dunder names
        ("builtins", "license"),
        ("argparse", "_os.remove"),  # traversal through a module alias
        ("numpy", "core._internal.sys.modules"),
        ("collections", "OrderedDict.fromkeys"),  # traversal through a vetted global
        ("builtins", "dict.get"),
        ("torch.storage", "UntypedStorage.from_file"),
        ("pathlib", "PurePosixPath.__new__"),
        ("torch._utils", "_type"),  # module-wide entries; vetted _rebuild_* stay safe
        ("torch._utils", "_import_dotted_name"),
        ("codecs", "open"),
        ("_codecs", "register"),
        ("posixpath", "exists"),
        ("ckptguard._policy._judge", "Policy"),  # scanner tampering
        ("picklescan.scanner", "scan_pickle_bytes"),
        ("mailcap", "findmatch"),
        ("numpy._core.multiarray", "fromfile"),
        ("numpy.lib._datasource", "open"),
    ],
)
def test_dangerous_names_added_by_the_audit(module: str, name: str) -> None:
    verdict, reason = default_policy().classify(module, name)
    assert verdict is Verdict.DANGEROUS, reason


def test_vetted_exceptions_inside_dangerous_modules_stay_safe() -> None:
    p = default_policy()
    assert p.classify("torch._utils", "_rebuild_tensor_v2")[0] is Verdict.SAFE
    assert p.classify("_codecs", "encode")[0] is Verdict.SAFE
    assert p.classify("copyreg", "_reconstructor")[0] is Verdict.SAFE
    assert p.classify("torch", "_utils._rebuild_tensor_v2")[0] is Verdict.SAFE  # same object


def test_nested_user_classes_are_still_allowable() -> None:
    p = default_policy().with_allowed(["mypkg.Outer.Inner", "otherpkg.sub.*"])
    assert p.classify("mypkg", "Outer.Inner")[0] is Verdict.ALLOWED
    assert p.classify("otherpkg.sub", "Thing")[0] is Verdict.ALLOWED
    # ... but an allowed package does not open a path to dangerous primitives
    assert p.classify("otherpkg.sub", "_os.system")[0] is Verdict.DANGEROUS
    assert p.classify("otherpkg.sub", "run")[0] is Verdict.DANGEROUS


@pytest.mark.parametrize("name", ["mypkg.tools.run", "torch._utils._type", "mypkg.__init__"])
def test_allow_entries_naming_dangerous_primitives_are_refused(name: str) -> None:
    with pytest.raises(PolicyError, match="cannot be allowed"):
        default_policy().with_allowed([name])
