"""What a dangerous verdict says about the file, where it is only referenced values.

A dangerous global that the file only *references* (a dict value, an argument of a vetted call
that does not call it) is not a call: the file does not run it. It still blocks loading, for
two reasons that hold whatever the file does with it: every stock loader imports it (an import
can run code), and the loaded object hands it to the code that uses the result, which may call
it. The verdict stays ``dangerous``; the words say what the file does.

"Only referenced" is read from the symbolic VM's uses, which mark a global called whenever any
opcode calls it (REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ, through the memo, STACK_GLOBAL, the
class a torch ``('module', ...)`` persistent id returns) or a vetted callable calls it on the
file's behalf (``callee`` arguments in call_bounds.toml); calls of anything that is not a global
are dangerous findings of their own, which rule this wording out.
"""

from __future__ import annotations

from ckptguard._verdict import Severity, Use, Verdict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from ckptguard._results import FindingRecord, GlobalRecord

_REFERENCE_ONLY = (Use.REFERENCE,)


def referenced_only(
    globals_: Iterable[GlobalRecord], findings: Iterable[FindingRecord]
) -> list[str]:
    """The dangerous globals' names when each is only referenced and nothing else in the file
    is dangerous; ``[]`` otherwise (then the file tries to run code). A global that is not
    vetted and that the file calls or builds (unknown or allowed code) may call what it is
    given, so such a file is never described as only referencing."""
    if any(f.severity is Severity.DANGEROUS for f in findings):
        return []
    names = []
    for g in globals_:
        if g.verdict is Verdict.DANGEROUS:
            if tuple(g.uses) != _REFERENCE_ONLY:
                return []
            names.append(g.qualified_name)
        elif g.verdict is not Verdict.SAFE and (Use.CALL in g.uses or Use.BUILD in g.uses):
            return []
    return names


def is_reference_only(g: GlobalRecord) -> bool:
    return tuple(g.uses) == _REFERENCE_ONLY


def referenced_hint(names: list[str], *, listed_above: bool = False) -> str:
    """The next step for a file whose only danger is referenced callables (``listed_above``:
    the message already lists them, one per line: they are not repeated)."""
    many = len(names) > 1
    if listed_above:
        shown = f"the dangerous global{'s' if many else ''} listed above"
    else:
        shown = ", ".join(names)
    them = "them" if many else "it"
    return (
        f"this file references {shown} (code that can run) as "
        f"{'values' if many else 'a value'}: the file does not call {them} itself, "
        f"but loading it imports {them} and hands {them} to the code that uses what it loads: "
        f"do not load it (this cannot be allowed); if you produced it yourself, re-save it "
        f"without {them}"
    )
