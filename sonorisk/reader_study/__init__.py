"""sonorisk.reader_study: the two-read reader-study harness (docs/reader-study.md).

``create`` builds a study (cases, readers, per-reader randomized steps, H.264
media) in a SQL database; ``web`` serves it to readers (FastAPI, server-rendered
pages); ``export`` writes reads.csv, the truth and AI tables and iMRMC input that
``sonorisk eval report`` reads. Nothing here imports fastapi or sqlalchemy at
package import: ``sonorisk --help`` stays fast.
"""
