"""The running service: the daemon's composition (``daemon.py``), its roles and web processes
(``webprocs.py``), live config reload (``reload.py``), the APScheduler jobs that dispatch due
sources (``scheduler.py``) and who holds a lease (``owners.py``)."""
