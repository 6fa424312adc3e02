"""The sample app's command line: the app with its migrations, for `flask --app manage db ...`.

    flask --app manage db upgrade                   # the release command: migrate to the newest
    flask --app manage db migrate -m "add a column"  # write a migration from the model's changes

gunicorn serves app.py, which never imports Alembic; the migrations need it here only.
"""
from flask_migrate import Migrate

from app import MIGRATIONS, app, db

migrate = Migrate(app, db, directory=str(MIGRATIONS))
