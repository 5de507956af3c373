"""Guards the PySide6 pin: 6.12.0 on Python 3.11 leaks a reference to True/None on every signal
emit and dies after a few hundred with 'Fatal Python error: bool_dealloc'."""

import subprocess
import sys

import PySide6


def test_not_the_broken_release():
    assert PySide6.__version__ != "6.12.0"


def test_a_hundred_thousand_emits_survive():
    # In a subprocess: if the bug is back, the interpreter aborts, and only that process dies.
    code = """
import sys
from PySide6 import QtCore
class Source(QtCore.QObject):
    flag = QtCore.Signal(bool)
    nothing = QtCore.Signal(object)
app = QtCore.QCoreApplication([])
src = Source()
seen = [0]
def on(value):
    seen[0] += 1
src.flag.connect(on)
src.nothing.connect(on)
before = sys.getrefcount(True), sys.getrefcount(None)
for i in range(50_000):
    src.flag.emit(i % 2 == 0)
    src.nothing.emit(None)
after = sys.getrefcount(True), sys.getrefcount(None)
print(seen[0], before[0] - after[0], before[1] - after[1])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    seen, lost_true, lost_none = (int(v) for v in out.stdout.split())
    assert seen == 100_000
    # Immortal on 3.12+, counted on 3.11: either way no references may leak per emit.
    assert lost_true < 1000 and lost_none < 1000
