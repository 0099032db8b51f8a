from tests.trainers.conftest import one_thread  # noqa: F401  (the same fixture: tiny models on one thread)
