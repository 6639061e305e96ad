"""Running the system: the one-machine stack (`make run`, the test suite), its embedded
Postgres, Redis and model server, and their supervisor. Above the Django project and the
workers: it may import them; they never import it (settings only read its URL defaults)."""
