"""Batch mode: ipywidgets' ``interact`` runs its function once, with each argument's first
choice (or the function's default), and shows no widget. A headless kernel has no front end
to move a slider, and papermill can wait for ever on the widget messages of an ``interact``
cell (papermill issue 723, nbclient issue 312): the real DRMIME 2D notebook hung in 4.3."""

import inspect as _hpc_inspect


def _hpc_choice(value, default=_hpc_inspect.Parameter.empty):
    """The value ``interact`` would start a widget at, for one of its abbreviations."""
    if hasattr(value, 'value') and not isinstance(value, (list, tuple, dict, str)):
        return value.value  # a widget, or ipywidgets.fixed
    if isinstance(value, dict):
        return next(iter(value.values()), None)
    if isinstance(value, tuple) and value and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        low, high = value[0], value[1] if len(value) > 1 else value[0]
        if default is not _hpc_inspect.Parameter.empty and low <= default <= high:
            return default
        return (low + high) // 2 if isinstance(low, int) and isinstance(high, int) \
            else (low + high) / 2
    if not isinstance(value, (list, tuple, str, bytes)) and hasattr(value, '__iter__'):
        value = list(value)  # a generator or map of choices: a Dropdown of its items
    if isinstance(value, (list, tuple)):
        if not value:
            return None
        first = value[0]
        return first[1] if isinstance(first, tuple) and len(first) == 2 else first
    return value


def hpc_dl4mic_interact(_function=None, **kwargs):
    """``interact`` without widgets: call the function once, display what it returns."""
    def run(function):
        values = {}
        for name, param in _hpc_inspect.signature(function).parameters.items():
            if name in kwargs:
                values[name] = _hpc_choice(kwargs[name], param.default)
            elif param.default is not _hpc_inspect.Parameter.empty:
                values[name] = _hpc_choice(param.default)
        print(f"hpc-dl4mic: batch run: {getattr(function, '__name__', 'function')}"
              f"({', '.join(f'{k}={v!r}' for k, v in values.items())}) run once "
              "instead of an interactive widget")
        result = function(**values)
        if result is not None:
            try:
                from IPython.display import display
                display(result)
            except ImportError:
                print(result)
        return function

    if _function is None:
        return run
    return run(_function)


def _hpc_patch_interact():
    try:
        import ipywidgets
        import ipywidgets.widgets as widgets
    except ImportError:
        return
    for module in (ipywidgets, widgets):
        module.interact = module.interact_manual = hpc_dl4mic_interact


_hpc_patch_interact()
