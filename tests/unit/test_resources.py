"""The resource parsers and the disk reserve rule, on samples recorded from real machines."""

from __future__ import annotations

import pytest

from app.domain.resources import (
    GB,
    MB,
    CpuTimes,
    Disk,
    InsufficientStorage,
    cpu_count_of,
    cpu_share,
    disk_filled,
    disk_of,
    parse_cpu_times,
    parse_meminfo,
    parse_nvidia_smi,
    parse_process_memory,
    reserve_refusal,
)

# /proc/stat of a 2-CPU VM, read twice 10 s apart (recorded; intr/softirq lines shortened).
PROC_STAT_BEFORE = """\
cpu  4059018 34606 786193 5045725 86229 0 22954 13031 0 0
cpu0 1830199 18104 326571 2812976 24563 0 2393 6489 0 0
cpu1 2228818 16501 459622 2232749 61665 0 20560 6541 0 0
intr 512733216 0 9 0 0 0 0 0 0 0 0 0 0 144 0 0 0
ctxt 1068390913
btime 1764000000
processes 2195770
procs_running 3
procs_blocked 0
softirq 226542335 0 51371235 102 15208283 0 0 1520 85626413 0 74334782
"""
PROC_STAT_AFTER = """\
cpu  4059900 34606 786393 5046380 86259 0 22969 13041 0 0
cpu0 1830630 18104 326671 2813300 24578 0 2401 6494 0 0
cpu1 2229270 16501 459722 2233080 61681 0 20568 6547 0 0
intr 512741000 0 9 0 0 0 0 0 0 0 0 0 0 144 0 0 0
ctxt 1068401500
btime 1764000000
processes 2195790
procs_running 2
procs_blocked 0
softirq 226550000 0 51373000 102 15209000 0 0 1520 85630000 0 74337000
"""

# /proc/meminfo of a 7.8 GB laptop (recorded; the tail of the file left out).
MEMINFO = """\
MemTotal:        8026432 kB
MemFree:          512344 kB
MemAvailable:    2997212 kB
Buffers:          201996 kB
Cached:          2530524 kB
SwapCached:         1224 kB
Active:          4433180 kB
Inactive:        2148332 kB
SwapTotal:       2097148 kB
SwapFree:        2080252 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
"""
MEMINFO_OLD_KERNEL = """\
MemTotal:        1016324 kB
MemFree:          105232 kB
Buffers:           61120 kB
Cached:           412800 kB
"""

# nvidia-smi --query-gpu=index,name,memory.used,memory.total,utilization.gpu
#            --format=csv,noheader,nounits on a 2-GPU workstation (recorded).
NVIDIA_SMI_TWO = """\
0, NVIDIA GeForce RTX 3090, 10240, 24576, 87
1, NVIDIA GeForce RTX 3090, 3, 24576, 0
"""
# A MIG-enabled A100 reports no utilisation; a Jetson-like board no memory.
NVIDIA_SMI_NA = """\
0, NVIDIA A100-SXM4-40GB, 4506, 40960, [N/A]
1, Orin (nvgpu), [Not Supported], [Not Supported], 12
"""

# /proc/<pid>/status of a worker after a training (recorded; lines left out).
STATUS = """\
Name:\tpython
State:\tS (sleeping)
Pid:\t41822
VmPeak:\t 8263412 kB
VmSize:\t 8132340 kB
VmHWM:\t 1236520 kB
VmRSS:\t  912344 kB
Threads:\t18
"""


def test_the_cpu_share_between_two_recorded_samples_counts_iowait_as_idle() -> None:
    before, after = parse_cpu_times(PROC_STAT_BEFORE), parse_cpu_times(PROC_STAT_AFTER)
    # user+nice+system+irq+softirq+steal went up by 882+0+200+0+15+10, idle+iowait by 655+30.
    assert before == CpuTimes(busy=4059018 + 34606 + 786193 + 22954 + 13031, total=10047756)
    share = cpu_share(before, after)
    assert share == pytest.approx(1107 / (1107 + 685))
    assert cpu_count_of(PROC_STAT_BEFORE) == 2


def test_no_time_between_samples_gives_no_share_rather_than_a_division_by_zero() -> None:
    sample = parse_cpu_times(PROC_STAT_BEFORE)
    assert cpu_share(sample, sample) is None
    assert cpu_share(parse_cpu_times(PROC_STAT_AFTER), sample) is None  # counters went back


def test_a_stat_text_without_the_cpu_line_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_cpu_times("intr 1 2 3\nctxt 4\n")


def test_ram_used_is_total_minus_available() -> None:
    memory = parse_meminfo(MEMINFO)
    assert memory.total == 8026432 * 1024
    assert memory.available == 2997212 * 1024
    assert memory.used == (8026432 - 2997212) * 1024
    assert f"{memory.used / GB:.1f}/{memory.total / GB:.1f}" == "5.1/8.2"


def test_a_kernel_without_memavailable_counts_free_buffers_and_cache() -> None:
    memory = parse_meminfo(MEMINFO_OLD_KERNEL)
    assert memory.available == (105232 + 61120 + 412800) * 1024


def test_meminfo_without_memtotal_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_meminfo("MemFree: 3 kB\n")


def test_two_gpus_are_read_with_their_memory_in_bytes_and_utilisation_as_a_share() -> None:
    first, second = parse_nvidia_smi(NVIDIA_SMI_TWO)
    assert first.index == 0 and first.name == "NVIDIA GeForce RTX 3090"
    assert first.memory_used == 10240 * 2**20
    assert first.memory_total == 24576 * 2**20
    assert first.utilisation == pytest.approx(0.87)
    assert second.index == 1 and second.memory_used == 3 * 2**20 and second.utilisation == 0.0


def test_na_and_not_supported_fields_are_unknown_not_zero() -> None:
    mig, orin = parse_nvidia_smi(NVIDIA_SMI_NA)
    assert mig.name == "NVIDIA A100-SXM4-40GB"
    assert mig.memory_used == 4506 * 2**20 and mig.utilisation is None
    assert orin.name == "Orin (nvgpu)"
    assert orin.memory_used is None and orin.memory_total is None
    assert orin.utilisation == pytest.approx(0.12)


def test_a_gpu_name_with_a_comma_and_stray_lines_are_handled() -> None:
    text = "0, Quadro RTX 4000, Mobile, 512, 8192, 5\nNo devices were found\n\n"
    (gpu,) = parse_nvidia_smi(text)
    assert gpu.name == "Quadro RTX 4000, Mobile"
    assert gpu.memory_total == 8192 * 2**20
    assert parse_nvidia_smi("") == []


def test_a_process_status_gives_its_memory_now_and_at_its_peak() -> None:
    assert parse_process_memory(STATUS) == (912344 * 1024, 1236520 * 1024)
    assert parse_process_memory("Name:\tkthreadd\nState:\tS\n") == (None, None)


def test_free_disk_is_what_an_ordinary_process_may_write() -> None:
    disk = disk_of("/srv/ydc", f_bavail=1000, f_blocks=5000, f_frsize=4096)
    assert disk == Disk("/srv/ydc", free=4096000, total=20480000)
    assert disk.used == 16384000


def test_the_reserve_refuses_what_would_go_below_it_and_names_reserve_and_free_space() -> None:
    disk = Disk("/work/storage", free=312 * MB, total=100 * GB)
    refusal = reserve_refusal(disk, reserve=500 * MB)
    assert isinstance(refusal, InsufficientStorage) and refusal.status == 507
    assert refusal.message.startswith("Not enough disk space: 312 MB free on /work/storage")
    assert "ydc keeps 500 MB free (YDC_DISK_RESERVE_MB)" in refusal.message
    assert "Nothing was stored." in refusal.message


def test_incoming_bytes_count_against_the_reserve() -> None:
    disk = Disk("/d", free=600 * MB, total=GB)
    assert reserve_refusal(disk, reserve=500 * MB, incoming=100 * MB) is None
    refused = reserve_refusal(disk, reserve=500 * MB, incoming=100 * MB + 1)
    assert refused is not None and "needs about 100 MB more" in refused.message


def test_small_uploads_are_named_in_kilobytes_not_as_zero_megabytes() -> None:
    refused = reserve_refusal(Disk("/d", free=MB, total=GB), reserve=GB, incoming=41_300)
    assert refused is not None and "needs about 41 KB more" in refused.message


def test_a_reserve_of_zero_is_off() -> None:
    assert reserve_refusal(Disk("/d", free=0, total=GB), reserve=0, incoming=GB) is None


def test_a_disk_that_filled_during_a_task_says_so_in_the_same_words() -> None:
    error = disk_filled(Disk("/d", free=0, total=GB), reserve=0, outcome="The export stopped.")
    assert error.status == 507
    assert error.message.startswith("The disk is full: 0 MB free on /d")
    assert "YDC_DISK_RESERVE_MB=0" in error.message and "The export stopped." in error.message
