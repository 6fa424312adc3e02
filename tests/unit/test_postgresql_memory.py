"""PostgreSQL's memory settings for the droplet sizes people buy and for big hosts
(plugins/filter/postgresql.py)."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.gigaflask.stack.plugins.filter.postgresql import postgresql_memory


@pytest.mark.parametrize("memtotal_mb, shared_buffers, effective_cache_size", [
    (481, "120MB", "360MB"),        # a 512 MB droplet, as the kernel reports it
    (1987, "496MB", "1490MB"),      # 2 GB
    (32768, "8192MB", "24576MB"),   # exactly at the cap
    (65536, "8192MB", "49152MB"),   # 64 GB: shared_buffers stops at 8 GB
])
def test_a_quarter_of_the_memory_at_most_8_gb_and_three_quarters(memtotal_mb, shared_buffers, effective_cache_size):
    assert postgresql_memory(memtotal_mb) == {"shared_buffers": shared_buffers,
                                              "effective_cache_size": effective_cache_size}


@pytest.mark.parametrize("bad", [None, "", "lots", 0, -1])
def test_anything_but_a_memory_size_is_refused(bad):
    with pytest.raises(AnsibleFilterError, match="memory in MB"):
        postgresql_memory(bad)
