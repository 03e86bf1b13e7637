"""Safe loading of ``torch.distributed.checkpoint`` (DCP) checkpoints.

``ckptguard.dcp.load(state_dict, checkpoint_id=DIR, allow=..., policy=...)`` has the contract of
``torch.distributed.checkpoint.load`` (in place into ``state_dict``, planners, single process
and multi-rank); ``SafeFileSystemReader(DIR, allow=..., policy=...)`` is a storage reader to
pass to ``dcp.load`` yourself. Both scan the whole checkpoint first and unpickle nothing the
scan did not approve. Importing this module imports torch.
"""

from ckptguard._dcp._load import SafeFileSystemReader, load

__all__ = ["SafeFileSystemReader", "load"]
