"""Code outside the package that registers tasks, heads and commands: a plugin is a Python module
(an importable name or a ``.py`` file) whose import calls ``register_model_task`` /
``register_task``. Every command line imports the plugins first, so a task written in one file of
one's own trains, evaluates and runs inference through ``ds-w2v`` and every launcher
(``deepspeed --module ds_w2v.train``, ``torchrun -m ds_w2v.train``: their ranks inherit the
environment) without a change to ds_w2v.

Where they are named:

* ``DS_W2V_PLUGINS``: comma-separated module names or ``.py`` paths
  (``DS_W2V_PLUGINS=my_tasks.py ds-w2v my-train --recipe ...``);
* an installed distribution's entry point in the group ``ds_w2v.plugins``
  (``[project.entry-points."ds_w2v.plugins"] mine = "my_package.tasks"``).

A plugin that cannot be imported stops the command with one line naming it and the reason.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

ENV = "DS_W2V_PLUGINS"
ENTRY_POINT_GROUP = "ds_w2v.plugins"
_loaded: dict[str, object] = {}


class PluginError(ValueError):
    """A named plugin could not be imported (one line: which, and why)."""


def named_plugins() -> list[str]:
    """The plugins named by ``DS_W2V_PLUGINS`` and by installed entry points, in that order."""
    names = [p.strip() for p in os.environ.get(ENV, "").split(",") if p.strip()]
    try:
        from importlib.metadata import entry_points

        names += [ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)]
    except Exception:  # a broken distribution's metadata is not a reason to refuse every command
        pass
    return list(dict.fromkeys(names))


def load_plugins() -> list[str]:
    """Import every named plugin once (a file by its path, a module by its name); their names."""
    for name in named_plugins():
        if name in _loaded:
            continue
        try:
            _loaded[name] = _import(name)
        except PluginError:
            raise
        except Exception as e:  # its own error, whatever it is, named with the plugin
            raise PluginError(f"plugin {name} ({ENV} or entry point {ENTRY_POINT_GROUP}): "
                              f"{type(e).__name__}: {e}") from e
    return list(_loaded)


def _import(name: str):
    if name.endswith(".py") or os.sep in name:
        path = Path(name).expanduser().resolve()
        if not path.is_file():
            raise PluginError(f"plugin {name} ({ENV}): no such file")
        module_name = f"ds_w2v_plugin_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # before exec: dataclasses and pickling look it up there
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(name)
