# The image every Airflow service AND the Spark master/workers run, so the Spark driver (in the
# Airflow worker) and the executors share one Python and one Spark version.
# The tag must equal the apache-airflow pin in requirements.txt (a test checks it).
FROM apache/airflow:3.3.2-python3.11

USER root
# Spark needs a JVM; headless is enough. mysqlclient (the MySQL warehouse hook) compiles against
# libmariadb when the image's own build differs from our pin.
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless build-essential pkg-config libmariadb-dev \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
ENV JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64

USER airflow
# Dependencies are baked in at build time (never _PIP_ADDITIONAL_REQUIREMENTS at start-up).
COPY --chown=airflow:root requirements.txt constraints.txt /tmp/
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /tmp/requirements.txt -c /tmp/constraints.txt
ENV PYTHONPATH=/opt/airflow:/opt/airflow/plugins
