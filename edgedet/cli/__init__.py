"""The `edgedet` command line (see main.py).

Ctrl-C while the command is still importing its modules exits 130 with one line instead of a
traceback (nothing has been written yet); `main()` installs its own handling once it runs.
"""

import os
import signal
import sys
import threading


def _interrupted_while_starting(signum, frame):
    sys.stderr.write("edgedet: interrupted\n")
    os._exit(130)


# only when edgedet is the program being started (the console script, or `python -m edgedet.cli`),
# never when a test runner or an application imports this package
if (
    os.path.basename(sys.argv[0]) in ("edgedet", "-m")
    and threading.current_thread() is threading.main_thread()
    and signal.getsignal(signal.SIGINT) is signal.default_int_handler
):
    signal.signal(signal.SIGINT, _interrupted_while_starting)
