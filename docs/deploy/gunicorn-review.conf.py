# gunicorn settings for the review face: gunicorn -c /etc/testimony/gunicorn-review.conf.py
# wsgi:review_app (see testimony-review.service).
import multiprocessing

bind = "unix:/run/testimony/review.sock"
workers = max(2, multiprocessing.cpu_count())
timeout = 300  # a search over many statements, a large original downloaded
graceful_timeout = 30
preload_app = True
max_requests = 2000
max_requests_jitter = 200
accesslog = None
errorlog = "-"
loglevel = "warning"
worker_tmp_dir = "/dev/shm"  # noqa: S108 (in memory, as gunicorn advises)
