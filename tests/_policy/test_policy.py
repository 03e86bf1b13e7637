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
    policy = default_policy()
    for profile in shipped().profiles.values():
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


def test_wildcard_allow_covers_a_package_only() -> None:
    p = default_policy().with_allowed(["fairseq.*"])
    assert p.classify("fairseq.data.dictionary", "Dictionary")[0] is Verdict.ALLOWED
    assert p.classify("fairseqx", "Thing")[0] is Verdict.UNKNOWN


@pytest.mark.parametrize("name", ["os.system", "builtins.eval", "subprocess.*", "torch.jit.load"])
def test_dangerous_globals_can_never_be_allowed(name: str) -> None:
    with pytest.raises(PolicyError, match="cannot be allowed"):
        default_policy().with_allowed([name])


@pytest.mark.parametrize("name", ["nodots", "a..b", "mod.Na me", "", "1abc.X"])
def test_malformed_allow_entries_are_refused(name: str) -> None:
    with pytest.raises(PolicyError, match="invalid global name"):
        default_policy().with_allowed([name])


def test_allowed_global_in_wildcard_still_dangerous_if_listed() -> None:
    p = default_policy().with_allowed(["mypkg.*"])
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
