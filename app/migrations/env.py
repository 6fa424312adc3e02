"""How Alembic reaches the app's database: through the Flask app that runs `flask db ...`."""
from logging.config import fileConfig

from alembic import context
from flask import current_app

config = context.config
if config.config_file_name:
    fileConfig(config.config_file_name)

database = current_app.extensions["migrate"].db
metadata = database.metadata


def run_offline():
    """`flask db upgrade --sql`: print the SQL instead of running it."""
    context.configure(url=database.engine.url.render_as_string(hide_password=False),
                      target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online():
    """One connection, one transaction: a migration that fails leaves the schema as it was."""
    with database.engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata,
                          transaction_per_migration=False, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
