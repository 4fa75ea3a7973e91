import json as _hpc_online_json
import os as _hpc_online_os
import time as _hpc_online_time


class NeedsInternet(RuntimeError):
    """A cell needs the internet and this node has none (HPC_DL4MIC_OFFLINE is set)."""


def _hpc_offline():
    return bool(_hpc_online_os.environ.get('HPC_DL4MIC_OFFLINE'))


def hpc_dl4mic_needs_internet(section, title, what):
    """Before a download: a one-line NeedsInternet error on an offline node."""
    if _hpc_offline():
        raise NeedsInternet(
            f"section {section} {title!r} needs the internet ({what}), which this node "
            f"does not have (HPC_DL4MIC_OFFLINE is set: the profile's node_internet is "
            f"off); give the data or model in /data instead, or skip the section "
            f"(batch --skip-sections {section})")


def hpc_dl4mic_skip_offline(section, title, what):
    """True (and one line printed and recorded) when a test-data download is skipped."""
    if not _hpc_offline():
        return False
    line = (f"hpc-dl4mic: skipped section {section} {title!r}: it downloads a test data set "
            f"({what}) and this node has no internet; the run uses the data it was given")
    print(line)
    entry = {"section": section, "title": title, "reason": 'needs the internet',
             "what": what, "time": _hpc_online_time.time()}
    results = globals().get('HPC_DL4MIC_RESULTS_DIR') or '.'
    try:
        with open(_hpc_online_os.path.join(results, 'skipped.jsonl'), 'a') as f:
            f.write(_hpc_online_json.dumps(entry) + '\n')
    except OSError:
        pass
    return True
