"""File jobs: files moved between file stores (``files:`` instead of ``tables:``, DESIGN §3).

    spec (runner.spec.filespec) -> plan.make_plan -> run (transfer.copy_file per file) -> state

- :mod:`.store`     one file store (local, SFTP, fsspec): list, stat, read, write, rename
- :mod:`.listing`   what a listing says of a file (size, mtime, ETag), whichever store answered
- :mod:`.match`     include / exclude globs
- :mod:`.plan`      what a run would copy, update, delete or skip, and why
- :mod:`.saved`     a saved plan (``plan --out``) against a fresh one, for ``etlrun apply``
- :mod:`.transfer`  one file: temporary name, hash while reading, verify, rename
- :mod:`.run`       the driver: lock, run record, threads, progress, deletes last
- :mod:`.state`     the per-file state (codes 0 copy, 1 copy if changed, 2 locked)
- :mod:`.check`     ``etlrun check`` for file jobs, ``--update-state``
- :mod:`.commands`  ``etlrun files list|lock|unlock``
"""
