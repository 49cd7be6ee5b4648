"""The floor for bench/links.py: a bare Flask app doing one INSERT or one SELECT per request.

Served by gunicorn exactly like ``axonlink serve`` (gthread workers), on the same database
(``FLOOR_DATABASE_URL``), so the ratio shows what axonlink adds on top of HTTP + SQL.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from flask import Flask, Response, request

engine = sa.create_engine(os.environ["FLOOR_DATABASE_URL"])
table = sa.Table(
    "floor_states", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("body", sa.LargeBinary)
)
app = Flask(__name__)


@app.post("/floor/states")
def insert():
    with engine.begin() as connection:
        new_id = connection.execute(sa.insert(table).values(body=request.get_data()).returning(table.c.id)).scalar()
    return {"id": new_id}


@app.get("/floor/states/<int:state_id>")
def select(state_id):
    with engine.connect() as connection:
        body = connection.execute(sa.select(table.c.body).where(table.c.id == state_id)).scalar()
    return Response(body, mimetype="application/json")
