# hpc-dl4mic: form helpers (generated; run this cell first). A form cell shows the fields of
# the code cell after it as widgets: edit them, then run that code cell. Values are saved to
# HPC_DL4MIC_VALUES_FILE whenever a code cell reads them and restored when widgets are made.
import datetime as _hpc_datetime
import json as _hpc_json

from .dirs import HPC_DL4MIC_RESULTS_DIR, _hpc_os  # hpc-dl4mic: inline dirs.py
from .online import hpc_dl4mic_needs_internet  # hpc-dl4mic: inline online.py  # noqa: F401

HPC_DL4MIC_VALUES_FILE = _hpc_os.path.join(HPC_DL4MIC_RESULTS_DIR, 'widget_values.json')
HPC_DL4MIC_FORMS = {}

try:
    import ipywidgets as _hpc_widgets
    from IPython.display import display as _hpc_display
except ImportError:  # no ipywidgets: the saved or default values are used
    _hpc_widgets = None
_hpc_made = {}  # form key -> {name: widget}


def _hpc_load():
    try:
        with open(HPC_DL4MIC_VALUES_FILE) as f:
            data = _hpc_json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _hpc_spec(form, name):
    for spec in HPC_DL4MIC_FORMS[form]:
        if spec["name"] == name:
            return spec
    raise KeyError(f"no field {name!r} in form {form!r}")


def _hpc_is_text(spec):
    return spec["type"] == "raw" or isinstance(spec["default"], (tuple, list))


def _hpc_widget(spec, value):
    w, t = _hpc_widgets, spec["type"]
    common = dict(description=spec["name"], style={"description_width": "initial"})
    wide = dict(layout=w.Layout(width="90%"))
    if spec["choices"] is not None:
        options = [str(c) for c in spec["choices"]] if t == "raw" else list(spec["choices"])
        if spec["allow_input"]:
            return w.Combobox(options=[str(o) for o in options], value=str(value), **common, **wide)
        return w.Dropdown(options=options, value=value, **common)
    if _hpc_is_text(spec):
        return w.Text(value=value if isinstance(value, str) else repr(value), **common, **wide)
    if t == "boolean":
        return w.Checkbox(value=bool(value), indent=False, **common)
    if t == "integer":
        return w.IntText(value=value, **common)
    if t == "number":
        return w.FloatText(value=value, **common)
    if t == "slider":
        bounds = dict(min=spec["min"], max=spec["max"], step=spec["step"] or 1)
        bounds = {k: v for k, v in bounds.items() if v is not None}
        floating = any(isinstance(v, float) for v in (*bounds.values(), value))
        cls = w.FloatSlider if floating else w.IntSlider
        return cls(value=value, **bounds, **common)
    if t == "date":
        day = _hpc_datetime.date.fromisoformat(value) if value else None
        return w.DatePicker(value=day, **common)
    return w.Text(value=str(value), **common, **wide)


def hpc_form(form):
    """Show the fields of one form as widgets (made once, from the saved or default values)."""
    saved = _hpc_load().get(form, {})
    if _hpc_widgets is None:
        print("ipywidgets is not installed; using these values (edit", HPC_DL4MIC_VALUES_FILE, "):")
        for spec in HPC_DL4MIC_FORMS[form]:
            print(f"  {spec['name']} = {saved.get(spec['name'], spec['default'])!r}")
        return
    if form not in _hpc_made:
        made = {}
        for spec in HPC_DL4MIC_FORMS[form]:
            try:
                made[spec["name"]] = _hpc_widget(spec, saved.get(spec["name"], spec["default"]))
            except Exception:  # a saved value that no longer fits: start from the default
                made[spec["name"]] = _hpc_widget(spec, spec["default"])
        _hpc_made[form] = made
    _hpc_display(_hpc_widgets.VBox(list(_hpc_made[form].values())))


def hpc_value(form, name):
    """The current value of one field (widget, else saved, else default); saves the values."""
    spec = _hpc_spec(form, name)
    data = _hpc_load()
    widget = _hpc_made.get(form, {}).get(name)
    if widget is not None:
        value = widget.value
        if isinstance(value, _hpc_datetime.date):
            value = value.isoformat()
        elif spec["type"] == "number" and isinstance(spec["default"], int) \
                and isinstance(value, float) and value.is_integer():
            value = int(value)
        if data.get(form, {}).get(name, spec["default"]) != value:
            data.setdefault(form, {})[name] = value
            try:
                with open(HPC_DL4MIC_VALUES_FILE, "w") as f:
                    _hpc_json.dump(data, f, indent=1, sort_keys=True)
            except OSError as err:
                print("hpc-dl4mic: could not save widget values:", err)
    else:
        value = data.get(form, {}).get(name, spec["default"])
    if _hpc_is_text(spec) and isinstance(value, str):
        value = eval(value, globals())  # raw fields hold Python expression text, as in Colab
    return value
