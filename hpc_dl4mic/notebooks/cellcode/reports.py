import json as _hpc_reports_json
import os as _hpc_reports_os
import time as _hpc_reports_time


def hpc_dl4mic_report(section, title, export, *args, **kwargs):
    """A ZeroCostDL4Mic PDF report (``pdf_export``, ``qc_pdf_export``) in a batch run: when
    it fails, one line printed and recorded, and the run goes on (in Colab the person runs
    the next cell; a batch run has nobody to do so, and the model is saved already)."""
    try:
        return export(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the report is a by-product of the section
        what = f"{getattr(export, '__name__', 'report')}: {type(exc).__name__}: {exc}"
        print(f"hpc-dl4mic: the notebook's PDF report in section {section} {title!r} failed "
              f"({what}); the run goes on without it")
        entry = {"section": section, "title": title, "reason": "report failed",
                 "what": what[:300], "time": _hpc_reports_time.time()}
        results = globals().get('HPC_DL4MIC_RESULTS_DIR') or '.'
        try:
            with open(_hpc_reports_os.path.join(results, 'skipped.jsonl'), 'a') as f:
                f.write(_hpc_reports_json.dumps(entry) + '\n')
        except OSError:
            pass
        return None
