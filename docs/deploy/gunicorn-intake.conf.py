# gunicorn settings for the witness face: gunicorn -c /etc/testimony/gunicorn-intake.conf.py
# wsgi:intake_app (see testimony-intake.service).
import multiprocessing

bind = "unix:/run/testimony/intake.sock"
# Sync workers: one request each. Uploads reach them unbuffered (nginx streams), so a slow
# upload over Tor holds a worker for its whole length: count on that when sizing.
workers = max(4, 2 * multiprocessing.cpu_count())
timeout = 3600  # the slowest upload a witness may need
graceful_timeout = 60
preload_app = True  # a killed worker comes back as a fork, without re-importing
max_requests = 2000  # recycle workers now and then
max_requests_jitter = 200
accesslog = None  # never: it would record who sent what, when
errorlog = "-"  # to the journal: the app logs only the kind of an error
loglevel = "warning"
worker_tmp_dir = "/dev/shm"  # noqa: S108 (in memory, as gunicorn advises)
limit_request_line = 4094
limit_request_fields = 50
