# hpc-dl4mic: batch set-up (generated). Runs after the parameters papermill injected; works
# out which parameters were given. Each former #@param line keeps a given value and
# otherwise sets its own default, as in Colab.
from .dirs import _hpc_os  # hpc-dl4mic: inline dirs.py  # noqa: F401
from .headless import hpc_dl4mic_interact  # hpc-dl4mic: inline headless.py  # noqa: F401
from .online import hpc_dl4mic_needs_internet  # hpc-dl4mic: inline online.py  # noqa: F401
from .reports import hpc_dl4mic_report  # hpc-dl4mic: inline reports.py  # noqa: F401

_HPC_DEFAULTS = {}
_HPC_RAW = set()


def _hpc_assigned_after_parameters():
    """Names assigned by the cells run between the parameters cell and this one."""
    import ast
    history = globals().get("In") or []
    names = set()
    for source in reversed(list(history)[:-1]):
        if source.lstrip().startswith("# hpc-dl4mic: " + "parameters cell"):
            return names
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        names.update(n.id for n in ast.walk(tree)
                     if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
    return set()  # parameters cell not in the history: only compare with the defaults


def _hpc_differs(value, default):
    try:
        return bool(value != default) or type(value) is not type(default)
    except Exception:
        return True


_hpc_given = _hpc_assigned_after_parameters()
__hpc_dl4mic_injected__ = {
    name: globals()[name] for name in _HPC_DEFAULTS
    if name in globals()
    and (name in _hpc_given or _hpc_differs(globals()[name], _HPC_DEFAULTS[name]))
}


def _hpc_param(name):
    """The value given for a parameter; a raw field's text is evaluated here, as Colab does."""
    value = __hpc_dl4mic_injected__[name]
    if name in _HPC_RAW and isinstance(value, str):
        value = eval(value, globals())
    elif isinstance(_HPC_DEFAULTS.get(name), tuple) and isinstance(value, list):
        value = tuple(value)  # papermill has no tuple literal: a tuple default comes as a list
    return value


print("hpc-dl4mic: parameters given:", ", ".join(sorted(__hpc_dl4mic_injected__)) or "none")
