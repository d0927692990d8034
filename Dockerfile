FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY staging ./staging
COPY integrations ./integrations
COPY linarc_client ./linarc_client
COPY qbo_client ./qbo_client
COPY netguard ./netguard
# With the monitoring extra (Flower), so the optional `flower` service runs on this image.
RUN pip install --no-cache-dir ".[monitoring]"
COPY . .
RUN DEBUG=1 python manage.py collectstatic --noinput
EXPOSE 8000
CMD ["gunicorn", "staging.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
