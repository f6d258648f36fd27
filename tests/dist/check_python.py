"""Checks an installed ioq Python package beyond its behaviour: typing files and docs.

    python check_python.py

- ioq/py.typed exists, and a .pyi stub beside each public module (ioq, ioq.aio);
- every public function, class, method and property of those modules has a docstring;
- every such name, and every public constant, appears in the module's stub.
Prints one line per problem and "python package: ok (...)" when there is none.
"""
import ast
import importlib
import inspect
import os
import sys

MODULES = ["ioq", "ioq.aio"]


def public_api(mod):
    """(qualified name, object) of the public callables defined by mod."""
    for name, obj in sorted(vars(mod).items()):
        if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
            continue
        if inspect.isclass(obj):
            yield name, obj
            for mname, member in sorted(vars(obj).items()):
                if mname.startswith("_"):
                    continue
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if inspect.isfunction(member) or isinstance(member, property):
                    yield "%s.%s" % (name, mname), member
        elif inspect.isfunction(obj):
            yield name, obj


def stub_names(path):
    names = set()
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            for sub in node.body:
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add("%s.%s" % (node.name, sub.name))
                elif isinstance(sub, ast.AnnAssign) and isinstance(sub.target, ast.Name):
                    names.add("%s.%s" % (node.name, sub.target.id))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def main():
    problems = []
    counted = 0
    pkg_dir = os.path.dirname(importlib.import_module("ioq").__file__)
    if not os.path.exists(os.path.join(pkg_dir, "py.typed")):
        problems.append("ioq/py.typed is missing")
    for modname in MODULES:
        mod = importlib.import_module(modname)
        stub = os.path.splitext(mod.__file__)[0] + ".pyi"
        names = stub_names(stub) if os.path.exists(stub) else None
        if names is None:
            problems.append("%s: no stub %s" % (modname, os.path.basename(stub)))
        for cname, value in sorted(vars(mod).items()):
            if (cname.isupper() and not cname.startswith("_") and names is not None
                    and isinstance(value, (int, str)) and cname not in names):
                problems.append("%s.%s: constant not in %s" % (modname, cname,
                                                               os.path.basename(stub)))
        for qual, obj in public_api(mod):
            counted += 1
            if not (inspect.getdoc(obj) or "").strip():
                problems.append("%s.%s: no docstring" % (modname, qual))
            if names is not None and qual not in names:
                problems.append("%s.%s: not in %s" % (modname, qual, os.path.basename(stub)))
    for p in problems:
        print(p)
    if problems:
        sys.exit("python package: %d problems" % len(problems))
    print("python package: ok (py.typed, stubs and docstrings for %d public names in %s)"
          % (counted, pkg_dir))


if __name__ == "__main__":
    main()
