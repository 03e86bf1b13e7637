"""The symbolic tree builder: structure, sharing, and fail-closed behaviour on hostile input."""

from __future__ import annotations

import pickle
from collections import OrderedDict

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ckptguard._convert._emit import emit_pickle
from ckptguard._convert._plain import Converter
from ckptguard._errors import PickleError
from ckptguard._pickle import PickleLimits
from ckptguard._pickle._tree import Call, Global, PersId, TDict, TList, TSet, TTuple, build_tree


def test_plain_values_round_trip_through_tree_convert_and_emit() -> None:
    shared = [1, 2]
    obj = {
        "a": [1, -5, 70000, 2**40, -(2**70), 1.5, float("inf"), None, True, "é\u2603"],
        "t": (1, (2, 3), ()),
        "shared": (shared, shared),
        "b": b"\x00\xffraw",
        "s": {1, 2},
        "c": 1 + 2j,
        3: "int key",
    }
    for proto in range(6):
        tree = build_tree(pickle.dumps(obj, protocol=proto))
        out = pickle.loads(emit_pickle(Converter({}).run(tree.root).root))
        assert out == obj
        assert out["shared"][0] is out["shared"][1]


def test_cycles_through_lists_are_kept() -> None:
    lst: list[object] = [1]
    lst.append(lst)
    tree = build_tree(pickle.dumps(lst, protocol=2))
    assert type(tree.root) is TList and tree.root.items[1] is tree.root
    out = pickle.loads(emit_pickle(Converter({}).run(tree.root).root))
    assert out[1] is out


def test_calls_build_state_items_and_persistent_ids() -> None:
    data = pickle.dumps(OrderedDict(a=1), protocol=2)
    root = build_tree(data).root
    assert type(root) is Call and root.func == Global("collections", "OrderedDict")
    assert root.dictitems == [("a", 1)]
    # persistent id, BUILD on the result of a call
    raw = b"\x80\x02cmod\nCls\n)\x81}X\x01\x00\x00\x00kK\x07sb(X\x07\x00\x00\x00storageK\x01tQ\x86."
    root = build_tree(raw).root
    assert type(root) is TTuple
    obj, pid = root.items
    assert type(obj) is Call and obj.op == "NEWOBJ" and obj.has_state
    assert type(obj.state) is TDict and obj.state.items == [("k", 7)]
    assert type(pid) is PersId and pid.pid.items == ("storage", 1)


def test_protocol_2_names_are_mapped_like_the_real_unpickler() -> None:
    root = build_tree(b"\x80\x02c__builtin__\nset\n.").root
    assert root == Global("builtins", "set")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "truncated"),
        (b"\x80\x02}", "before its STOP"),
        (b"\x80\x02X\xff\x00\x00\x00ab.", "truncated"),
        (b"\x80\x09N.", "protocol"),
        (b"h\x05.", "memo key 5"),
        (b"\x80\x02K\x01K\x02\x93.", "not literal strings"),  # STACK_GLOBAL from ints
        (b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00idb.", "BUILD on a global"),
        (b"\x80\x02](K\x01u.", "SETITEMS"),
        (b"\x80\x02K\x00K\x01K\x02s.", "SETITEM(S) on an int"),
        (b"\x82\x01.", "EXT"),
        (b"\x97.", "out-of-band"),
        (b"\xff.", "invalid opcode"),
        (b"t.", "MARK"),
        (b"\x80\x020.", "MARK"),  # POP on an empty stack pops a mark that is not there
        (b"\x80\x02}(K\x01u}(K\x01K\x02u.", "odd"),
    ],
)
def test_malformed_or_hostile_streams_fail_closed(data: bytes, problem: str) -> None:
    with pytest.raises(PickleError) as exc:
        build_tree(data)
    assert problem.lower() in str(exc.value).lower()


def test_limits_are_enforced() -> None:
    many = pickle.dumps(list(range(1000)), protocol=2)
    with pytest.raises(PickleError, match="opcodes"):
        build_tree(many, limits=PickleLimits(max_opcodes=50))
    nested = b"(" * 100 + b"."
    with pytest.raises(PickleError, match="MARK"):
        build_tree(nested, limits=PickleLimits(max_marks=10))
    memo = b"\x80\x02N" + b"\x94" * 20 + b"."
    with pytest.raises(PickleError, match="memo"):
        build_tree(memo, limits=PickleLimits(max_memo=5))


def test_deep_nesting_is_refused_by_the_converter_not_a_crash() -> None:
    data = b"\x80\x02" + b"]" * 5000 + b"a" * 4999 + b"."
    tree = build_tree(data)
    from ckptguard._errors import ConvertError

    with pytest.raises(ConvertError, match="nested"):
        Converter({}).run(tree.root)


def _shape(node: object, seen: dict[int, int] | None = None) -> object:
    """A tree as comparable plain data, sharing shown as back-references."""
    seen = {} if seen is None else seen
    if isinstance(node, (TList, TTuple, TDict, TSet, Call, PersId)):
        if id(node) in seen:
            return ("ref", seen[id(node)])
        seen[id(node)] = len(seen)
    if isinstance(node, (TList, TTuple)):
        return (type(node).__name__, [_shape(x, seen) for x in node.items])
    if isinstance(node, TSet):
        return ("frozenset" if node.frozen else "set", [_shape(x, seen) for x in node.items])
    if isinstance(node, TDict):
        return ("dict", [(_shape(k, seen), _shape(v, seen)) for k, v in node.items])
    if isinstance(node, Call):
        return (
            "call", node.op, _shape(node.func, seen), _shape(node.args, seen),
            _shape(node.state, seen), node.has_state,
            [(_shape(k, seen), _shape(v, seen)) for k, v in node.dictitems],
            [_shape(x, seen) for x in node.listitems],
        )  # fmt: skip
    if isinstance(node, PersId):
        return ("pid", _shape(node.pid, seen))
    return (type(node).__name__, node)


_leaves = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=8) | st.binary(max_size=8)
)  # fmt: skip
_values = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.tuples(inner, inner)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=4) | st.integers(), inner, max_size=5)
        | st.builds(OrderedDict, st.dictionaries(st.text(max_size=4), inner, max_size=3))
    ),
    max_leaves=30,
)


@given(value=_values, shared=st.booleans(), proto=st.integers(0, 5))
@settings(max_examples=300, deadline=None)
def test_the_fast_path_builds_the_same_tree_as_the_exact_one(
    value: object, shared: bool, proto: int
) -> None:
    obj = [value, value] if shared else value  # memo references to shared containers
    data = pickle.dumps(obj, protocol=proto)
    fast = build_tree(data)
    exact = build_tree(data, limits=PickleLimits(max_memo=1000))  # small limit: exact path
    assert (fast.end, fast.protocol) == (exact.end, exact.protocol)
    assert _shape(fast.root) == _shape(exact.root)


@pytest.mark.parametrize("cut", [1, 2, 5, 9, 17])
def test_the_fast_path_fails_closed_on_truncation_like_the_exact_one(cut: int) -> None:
    data = pickle.dumps({"a": [1.5, "x" * 300, (1, 2)], "b": {"c": None}}, protocol=2)
    for limits in (PickleLimits(), PickleLimits(max_memo=1000)):
        with pytest.raises(PickleError, match=r"truncated|malformed"):
            build_tree(data[:-cut], limits=limits)


def _build_or_error(data: bytes, limits: PickleLimits) -> object:
    try:
        tree = build_tree(data, limits=limits)
    except PickleError:
        return "error"
    return (tree.end, tree.protocol, _shape(tree.root))


_SEED = pickle.dumps(
    [{"a": [1.5, "é", b"x", (1, 2, 3), None, True], "b": OrderedDict(c=[])}, (7,), "s" * 40],
    protocol=2,
)


@given(flips=st.lists(st.tuples(st.integers(0, len(_SEED) - 1), st.integers(0, 255)), max_size=4))
@settings(max_examples=400, deadline=None)
@example(flips=[(148, 145)])  # a FROZENSET: sets were compared by identity, not by shape
def test_damaged_pickles_get_the_same_answer_from_the_fast_path(
    flips: list[tuple[int, int]],
) -> None:
    data = bytearray(_SEED)
    for at, byte in flips:
        data[at] = byte
    fast = _build_or_error(bytes(data), PickleLimits())
    exact = _build_or_error(bytes(data), PickleLimits(max_memo=1000))
    assert fast == exact


def test_sets_built_by_a_damaged_pickle_compare_by_shape_not_identity() -> None:
    """Regression (flips=[(148, 145)]): a flipped byte turns an opcode into FROZENSET, whose
    TSet node (eq=False) the shape helper compared by identity, so the fast and the exact path
    seemed to disagree although both built the same tree."""
    data = bytearray(_SEED)
    data[148] = 0x91  # FROZENSET
    fast = build_tree(bytes(data))
    exact = build_tree(bytes(data), limits=PickleLimits(max_memo=1000))
    assert any(type(x) is TSet and x.frozen for x in fast.root.items)
    assert _shape(fast.root) == _shape(exact.root)
    assert _shape(TSet(["a"], frozen=True)) != _shape(TSet(["b"], frozen=True))
