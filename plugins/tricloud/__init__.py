"""tricloud: the Airflow side of the template — operators, hooks and cluster backends.

Imports flow dags -> tricloud -> include, never back.
"""
