"""The embedded local stack: Spark standalone + Airflow standalone as plain processes on 127.0.0.1.

``python -m stack up|down|status|demo``. Ports, connection ids and env names come from ``.env``
(copied from ``.env.example``); tests and docker compose read the same file.
"""
