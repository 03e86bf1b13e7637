"""Issue 10, policy: wildcards stay inside one module, dangerous names match anywhere in a dotted
chain, and wildcards over namespaces that are not the user's own are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ckptguard import PolicyError, Verdict
from ckptguard._cli import main
from ckptguard._policy import Policy, default_policy, resolve_policy
from ckptguard._policy._discovery import ENV_VAR
from ckptguard._policy._namespace import foreign_namespace
from tests.pickleasm import EMPTY_DICT, binput, program

# ------------------------------------------------------------------ wildcards


@pytest.fixture
def wild() -> Policy:
    return default_policy().with_allowed(["pkg.mod.*"])


def test_wildcard_allows_the_public_names_its_module_defines(wild: Policy) -> None:
    assert wild.classify("pkg.mod", "Config")[0] is Verdict.ALLOWED
    assert wild.classify("pkg.mod", "Mode")[0] is Verdict.ALLOWED


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("pkg.mod", "torch.fx.graph_module._exec_with_source"),  # the traversal
        ("pkg.mod", "helpers.Thing"),  # an attribute path into another module
        ("pkg.mod", "Config.from_path"),  # an attribute of an allowed class
        ("pkg.mod", "_private"),  # a leading underscore
        ("pkg.mod", "__reduce__"),
        ("pkg.mod.sub", "Thing"),  # a submodule
        ("pkg.mod.sub.deeper", "Thing"),
        ("pkg", "mod.Config"),  # the same dotted path, split elsewhere: getattr over pkg
        ("pkg.modx", "Config"),
        ("pkg", "Config"),
    ],
)
def test_wildcard_never_reaches_beyond_its_module(wild: Policy, module: str, name: str) -> None:
    assert wild.classify(module, name)[0] is not Verdict.ALLOWED


def test_exact_entries_match_only_their_own_dotted_path() -> None:
    p = default_policy().with_allowed(["pkg.mod.Config"])
    assert p.classify("pkg.mod", "Config")[0] is Verdict.ALLOWED
    assert p.classify("pkg.mod", "Config.sub")[0] is not Verdict.ALLOWED
    assert p.classify("pkg.mod", "Configx")[0] is not Verdict.ALLOWED
    assert p.classify("pkg.mod.Config", "x")[0] is not Verdict.ALLOWED


# ------------------------------------------------------------------ chains

CHAINS = [
    ("mypkg", "os.system"),
    ("mypkg.os", "system"),
    ("mypkg.os.system", "x"),
    ("mypkg", "_os.system"),
    ("mypkg.sub", "os.execv"),  # execv is not a dangerous attribute by itself
    ("mypkg.os", "execv"),
    ("x.builtins", "eval"),
    ("x", "builtins.eval"),
    ("x.y", "builtins.exec"),
    ("mypkg", "subprocess.check_output"),
    ("mypkg.helpers", "_subprocess.check_output"),
    ("mypkg", "importlib.util.spec_from_file_location"),
    ("mypkg", "runpy.run_path"),
    ("mypkg", "ctypes.CDLL"),
    ("mypkg", "pickle.Unpickler"),
    ("mypkg", "_pickle.Unpickler"),
    ("mypkg", "marshal.loads"),
    ("mypkg", "shutil.rmtree"),
    ("mypkg", "socket.create_connection"),
    ("mypkg", "code.InteractiveInterpreter"),
    ("mypkg", "posix.system"),
    ("mypkg", "nt.system"),
    ("mypkg", "_io.FileIO"),
    ("mypkg", "_posixsubprocess.fork_exec"),
    ("mypkg", "numpy.savetxt"),
    ("mypkg.np", "numpy.load"),
    ("mypkg", "typing.ForwardRef._evaluate"),
    ("mypkg", "uuid._get_command_stdout"),
    ("mypkg", "_interpreters.create"),
    ("mypkg", "_xxsubinterpreters.create"),
    ("mypkg", "copy_reg._reconstructor.x"),
    ("mypkg", "cPickle.loads"),
    ("torch.nn.modules.module", "torch.serialization.load"),
]


@pytest.mark.parametrize(("module", "name"), CHAINS)
def test_a_dangerous_name_is_dangerous_anywhere_in_a_dotted_chain(module: str, name: str) -> None:
    assert default_policy().classify(module, name)[0] is Verdict.DANGEROUS


@pytest.mark.parametrize(("module", "name"), CHAINS)
def test_a_chain_cannot_be_allowed_by_a_user_entry(module: str, name: str) -> None:
    with pytest.raises(PolicyError, match="cannot be allowed"):
        default_policy().with_allowed([f"{module}.{name}"])


@pytest.mark.parametrize("split", range(1, 4))
def test_every_split_of_a_dangerous_path_is_dangerous(split: int) -> None:
    parts = ["mypkg", "vendored", "os", "system"]
    module, name = ".".join(parts[:split]), ".".join(parts[split:])
    assert default_policy().classify(module, name)[0] is Verdict.DANGEROUS


def test_unicode_look_alikes_of_dangerous_names_are_dangerous() -> None:
    # CPython's find_class uses the exact string, so these resolve to nothing dangerous, but a
    # name that only differs by compatibility form is never worth approving.
    fullwidth_os = "\uff4f\uff53"
    assert default_policy().classify("mypkg", f"{fullwidth_os}.system")[0] is Verdict.DANGEROUS
    assert default_policy().classify(fullwidth_os, "system")[0] is Verdict.DANGEROUS


@pytest.mark.no_cover  # a time bound on the code, not on coverage's tracer
def test_chain_matching_is_linear_in_the_number_of_parts() -> None:
    import time

    name = ".".join(f"a{i}" for i in range(200_000))
    start = time.perf_counter()
    verdict, _ = Policy().classify("mypkg", name)
    assert verdict is Verdict.UNKNOWN
    # quadratic would take many minutes; 30 s leaves room for a loaded 2-core machine
    assert time.perf_counter() - start < 30


def test_benign_user_names_are_still_unknown_and_allowable() -> None:
    p = default_policy().with_allowed(["mypkg.models.Net", "mypkg.configs.*"])
    assert p.classify("mypkg.models", "Net")[0] is Verdict.ALLOWED
    assert p.classify("mypkg.configs", "TrainConfig")[0] is Verdict.ALLOWED
    assert default_policy().classify("mypkg.models", "Net")[0] is Verdict.UNKNOWN


def test_vetted_globals_stay_safe_with_the_chain_rule() -> None:
    p = default_policy()
    assert p.classify("torch._utils", "_rebuild_tensor_v2")[0] is Verdict.SAFE
    assert p.classify("_codecs", "encode")[0] is Verdict.SAFE
    assert p.classify("numpy.random._pickle", "__randomstate_ctor")[0] is Verdict.SAFE
    assert p.classify("copyreg", "_reconstructor")[0] is Verdict.SAFE


# ------------------------------------------------------------------ foreign namespaces

FOREIGN = [
    "typing.*",
    "os.*",
    "collections.*",
    "collections.abc.*",
    "json.*",
    "torch.*",
    "torch.nn.modules.*",
    "numpy.*",
    "numpy.lib.*",
    "numpy.matlib.*",
    "transformers.models.*",  # known third party, installed or not
    "sklearn.*",
    "hypothesis.*",  # installed here (a distribution in site-packages)
    "pytest.*",
]


@pytest.mark.parametrize("entry", FOREIGN)
def test_wildcards_over_foreign_namespaces_are_refused(entry: str) -> None:
    with pytest.raises(PolicyError) as info:
        default_policy().with_allowed([entry])
    message = info.value.problem
    assert entry in message  # names the entry
    if "cannot be allowed" not in message:  # (os.*, transformers.*: dangerous to begin with)
        assert "your own package" in message and "exact names" in message  # and what to do


def test_exact_names_in_foreign_namespaces_may_still_be_allowed() -> None:
    p = default_policy().with_allowed(["fairseq.data.dictionary.Dictionary"])
    assert p.classify("fairseq.data.dictionary", "Dictionary")[0] is Verdict.ALLOWED


def test_the_users_own_namespace_is_not_foreign() -> None:
    assert foreign_namespace("mycompany_models.configs") is None
    assert foreign_namespace("tests.factories") is None  # this repository's own test package


def test_an_editable_install_is_the_users_own_code() -> None:
    # ckptguard itself is installed editable here: its files are not in site-packages. (It is
    # still refused, by the shipped third-party list, since it is not *your* package.)
    from ckptguard._policy._namespace import _installed_distribution

    assert _installed_distribution("ckptguard") is None
    assert _installed_distribution("hypothesis") == "hypothesis"


def test_foreign_wildcards_are_refused_from_every_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    policy_file = tmp_path / "p.toml"
    policy_file.write_text('allow = ["numpy.lib.*"]\n')
    with pytest.raises(PolicyError, match=r"numpy\.lib\.\*.*p\.toml"):
        resolve_policy(policy=policy_file, environ={})
    with pytest.raises(PolicyError, match=r"numpy\.lib\.\*"):
        resolve_policy(environ={ENV_VAR: str(policy_file)})
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text('[tool.ckptguard]\nallow = ["typing.*"]\n')
    with pytest.raises(PolicyError, match=r"typing\.\*"):
        resolve_policy(start_dir=project, environ={}, targets=[tmp_path / "elsewhere.pt"])
    with pytest.raises(PolicyError, match=r"os\.\*"):
        resolve_policy(allow=["os.*"], environ={})
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV_VAR, raising=False)
    (tmp_path / "m.pt").write_bytes(program(EMPTY_DICT, binput(0)))
    assert main(["scan", "m.pt", "--allow", "torch.*", "--json"]) == 2
    err = capsys.readouterr().err
    assert "torch.*" in err and "third-party" in err
    assert main(["scan", "m.pt", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "safe"


def test_vetted_names_are_shallower_than_the_depth_the_rules_look_at() -> None:
    from ckptguard._policy._data import shipped
    from ckptguard._policy._judge import _VETTED_DEPTH

    deepest = max(n.count(".") + 1 for p in shipped().profiles.values() for n in p)
    assert deepest < _VETTED_DEPTH
