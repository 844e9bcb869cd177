"""Put on PYTHONPATH by tests/test_colab_rehearsal.py: every Python process of
the rehearsal (the command line, papermill's kernels) appends to
$LRKIT_REHEARSAL_LOG the Hugging Face repositories whose cached files it opens
under $HF_HOME, so the test can compare them with the paper's."""
import os
import re
import sys

_LOG = os.environ.get("LRKIT_REHEARSAL_LOG")
_HOME = os.environ.get("HF_HOME")
_HUB = re.compile(r"/hub/(models|datasets)--([^/]+?)--([^/]+)/")
_DATASETS = re.compile(r"/datasets/([^/]+?)___([^/]+)/")

if _LOG and _HOME:
    _seen = set()
    _busy = []

    def _hook(event, args):
        if event != "open" or _busy or not args or not isinstance(args[0], (str, bytes, os.PathLike)):
            return
        path = os.fsdecode(args[0])
        if not path.startswith(_HOME):
            return
        hub, cached = _HUB.search(path), _DATASETS.search(path)
        if hub:
            entry = f"{hub.group(1)[:-1]} {hub.group(2)}/{hub.group(3)}"
        elif cached:
            entry = f"dataset-cache {cached.group(1)}/{cached.group(2)}"
        else:
            return
        if entry in _seen:
            return
        _seen.add(entry)
        _busy.append(1)
        try:
            fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(fd, (entry + "\n").encode())
            os.close(fd)
        finally:
            _busy.pop()

    sys.addaudithook(_hook)
