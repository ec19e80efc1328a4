from core.urls import redact_url


def test_a_password_never_survives_and_the_rest_of_the_url_does():
    assert redact_url("postgresql+psycopg://ana:s3cret@db.example:5432/seedloop") == \
        "postgresql+psycopg://ana:***@db.example:5432/seedloop"
    assert redact_url("redis://:pw@127.0.0.1:6390/0") == "redis://:***@127.0.0.1:6390/0"
    for unchanged in ("redis://127.0.0.1:6390/0", "sqlite:///runs/x/review.db", "runs/x/review.db", "", None):
        assert redact_url(unchanged) == unchanged
