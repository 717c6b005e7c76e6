"""Public names are single concepts: no module is shadowed by a function, no class name is reused."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types

import vidpool


def test_the_compress_function_is_not_a_module_alias():
    import vidpool.compression as compression

    assert isinstance(compression, types.ModuleType)
    assert callable(vidpool.compress) and not isinstance(vidpool.compress, types.ModuleType)
    assert vidpool.compress is compression.compress


def test_no_function_shadows_a_submodule():
    """``import vidpool.x.y as m`` must give the module ``vidpool.x.y``, never a function of that name."""
    for info in pkgutil.walk_packages(vidpool.__path__, "vidpool."):
        if info.name.startswith(("vidpool.integrations", "vidpool.demo", "vidpool.caption")):
            continue
        parent_name, _, child = info.name.rpartition(".")
        parent = importlib.import_module(parent_name)
        module = importlib.import_module(info.name)
        attr = getattr(parent, child)
        assert attr is module, f"{parent_name}.{child} is {attr!r}, which hides the module {info.name}"


def test_public_class_names_are_unique():
    owners: dict[str, str] = {}
    for info in pkgutil.walk_packages(vidpool.__path__, "vidpool."):
        if info.name.startswith(("vidpool.integrations", "vidpool.demo", "vidpool.caption")):
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if not inspect.isclass(obj) or obj.__module__ != module.__name__:
                continue
            assert owners.setdefault(name, module.__name__) == module.__name__, (
                f"{name} is defined in both {owners[name]} and {module.__name__}"
            )
