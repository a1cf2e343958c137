"""Runs several `bertlite` command lines in one Python process (torch is imported once), each exactly as the console
script runs it (`bertlite.cli.main`), with the process's real stderr (file descriptor 2, so C-level and logging
output count too) captured per command. Used by test_bad_inputs.py as a subprocess:

    python tests/cli_driver.py CASES.json RESULTS.json

CASES.json: a list of argv lists. RESULTS.json: [{"rc": int, "stderr": str}] in the same order. An exception that
escapes `main` is printed with its traceback to the captured stderr, as Python would."""

import json
import os
import sys
import tempfile
import traceback


def run_one(argv):
    from bertlite.cli import main

    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            try:
                rc = main(list(argv))
            except SystemExit as stop:
                rc = stop.code if isinstance(stop.code, int) else 1
            except BaseException:  # noqa: BLE001 - what a user would see: a traceback
                traceback.print_exc()
                rc = 1
            sys.stderr.flush()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        return {"rc": rc, "stderr": captured.read().decode(errors="replace")}


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    results = [run_one(argv) for argv in cases]
    with open(sys.argv[2], "w") as f:
        json.dump(results, f)
