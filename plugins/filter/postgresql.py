# -*- coding: utf-8 -*-
"""PostgreSQL's memory settings sized from the host's memory (the postgresql role's defaults).

shared_buffers is a quarter of the memory, at most 8 GB: past that the kernel's page cache serves
reads as well, and a bigger buffer pool only lengthens checkpoints. effective_cache_size, a planner
hint of what both caches hold together, is three quarters. Sizes are whole megabytes, as
postgresql.conf writes them ("512MB").
"""

DOCUMENTATION = r"""
  name: postgresql_memory
  short_description: PostgreSQL's shared_buffers and effective_cache_size for a host's memory
  description:
    - shared_buffers is 25% of the memory, at most 8192MB; effective_cache_size is 75%.
  positional: _input
  options:
    _input:
      description: The host's memory in MB (C(ansible_facts.memtotal_mb)).
      type: int
      required: true
"""

from ansible.errors import AnsibleFilterError

SHARED_BUFFERS_MAX_MB = 8192


def postgresql_memory(memtotal_mb):
    try:
        mb = int(memtotal_mb)
    except (TypeError, ValueError):
        raise AnsibleFilterError("postgresql_memory expects the host's memory in MB, got %r" % (memtotal_mb,))
    if mb <= 0:
        raise AnsibleFilterError("postgresql_memory expects the host's memory in MB, got %r" % (memtotal_mb,))
    return {
        "shared_buffers": "%dMB" % min(mb // 4, SHARED_BUFFERS_MAX_MB),
        "effective_cache_size": "%dMB" % (mb * 3 // 4),
    }


class FilterModule(object):
    def filters(self):
        return {"postgresql_memory": postgresql_memory}
