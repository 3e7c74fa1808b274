"""A submit's statements do not grow with its frames (issue 16): tasks, frames and keys are one executemany each.

As ORM objects each row was a statement of its own (SQLite gives SQLAlchemy no ordered RETURNING for a batch): a
1,000-frame job in chunks of 1 sent about 4,000 INSERTs inside its write transaction.
"""

from __future__ import annotations

from typing import Any

from framehive.coordinator.db import db
from framehive.coordinator.models import Frame, Task, VerificationKey
from sqlalchemy import event, func, select


def statements_of_a_submit(app, api, scene_sha: str, frames: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    sent: list[str] = []

    def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", _count)
    try:
        response = api.post("/api/v1/jobs", json={"scene": scene_sha, "frames": frames, "chunk": 1})
    finally:
        with app.app_context():
            event.remove(db.engine, "before_cursor_execute", _count)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"], len(sent)


def test_a_submit_sends_as_many_statements_for_64_frames_as_for_2(app, api, scene_sha):  # type: ignore[no-untyped-def]
    statements_of_a_submit(app, api, scene_sha, "1-2")  # the first reads the scene (kept on its blob's row)
    _, small = statements_of_a_submit(app, api, scene_sha, "1-2")
    big_job, big = statements_of_a_submit(app, api, scene_sha, "1-12")
    assert big == small  # 10 tasks and frames more, and their keys: 40 statements more before
    with app.app_context():
        def count(model: Any) -> int:
            return db.session.execute(select(func.count()).select_from(model).where(model.job_id == big_job)).scalar()

        assert count(Task) == count(Frame) == 12
        keys = db.session.execute(select(VerificationKey.task_id, VerificationKey.frame, VerificationKey.kind)
                                  .where(VerificationKey.job_id == big_job)).all()
        frames_of = dict(db.session.execute(select(Frame.task_id, Frame.number).where(Frame.job_id == big_job)).all())
        assert {kind for _, _, kind in keys} >= {"region", "spot"}
        assert all(frames_of[task_id] == frame for task_id, frame, _ in keys)  # each key on its own task's frame
